"""The model zoo: where each component of a family comes from.

Synthetic profiles (``full``, ``short``, ``tiny``) build each component from its config with seeded random
weights (latency does not depend on weight values), and derive students from their teacher by
code; the ``hub`` profile loads real weights from a hub id or a local directory through
``from_pretrained``, honouring the user's cache (HF_HOME) and HF_HUB_OFFLINE.
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import CLIPTokenizer, PreTrainedModel, T5TokenizerFast
from transformers.convert_slow_tokenizer import bytes_to_unicode

from diffperf.models.family import Component, Family, HubId, is_local
from diffperf.models.profiles import PROFILE_NAMES, SYNTHETIC, architecture


class ModelNotAvailable(RuntimeError):
    """A hub model or local directory could not be loaded; the message says what to download."""


def offline_clip_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """A valid CLIP tokenizer that needs no download.

    Byte-level BPE with the 256 byte symbols, their ``</w>`` forms and the two special tokens, and
    no merges: every character becomes one token. The end-of-text token has the largest id, so
    CLIPTextModel's legacy pooling (argmax of the ids) finds it.
    """
    symbols = list(bytes_to_unicode().values())
    vocab = {symbol: index for index, symbol in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def offline_t5_tokenizer(model_max_length: int = 512) -> T5TokenizerFast:
    """A valid T5 tokenizer that needs no download (nor sentencepiece).

    A Unigram model, as T5's, over T5's special tokens (``<pad>`` 0, ``</s>`` 1, ``<unk>`` 2), the word
    boundary ``▁``, the printable characters alone and after ``▁``, and the pairs of lower-case letters,
    all of one score: a word becomes its fewest pieces, so the scenarios' prompts fit in 32 tokens (the
    tiny profile's ``max_sequence_length``) without truncation. Other characters are ``<unk>``.
    """
    characters = [character for character in string.printable if not character.isspace()]
    pairs = [first + second for first in string.ascii_lowercase for second in string.ascii_lowercase]
    pieces = ["▁", *characters, *("▁" + character for character in characters), *pairs]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), *((piece, -1.0) for piece in pieces)]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=model_max_length)


OFFLINE_TOKENIZERS = {CLIPTokenizer: offline_clip_tokenizer, T5TokenizerFast: offline_t5_tokenizer}
"""The tokenizer classes a synthetic profile builds, each with its offline builder."""


def offline_tokenizer(component: Component, profile: str):
    """The tokenizer ``component`` declares, built offline for a synthetic profile with its ``model_max_length``."""
    for cls, build in OFFLINE_TOKENIZERS.items():
        if issubclass(component.cls, cls):
            return build(component.config(profile)["model_max_length"])
    raise ValueError(f"tokenizer {component.name}: no offline {component.cls.__name__} on the synthetic profiles: "
                     f"declare one of {', '.join(cls.__name__ for cls in OFFLINE_TOKENIZERS)}")


def count_parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def is_tokenizer(component: Component) -> bool:
    return not issubclass(component.cls, torch.nn.Module)


def from_config(cls: type, config: dict) -> torch.nn.Module:
    """A transformers or diffusers model of class ``cls`` built from a config dict."""
    if issubclass(cls, PreTrainedModel):
        return cls(cls.config_class(**config))
    return cls.from_config(config)


@dataclass
class SyntheticSource:
    """Builds a profile's components from configs with seeded random weights."""

    profile: str  # the configs it builds: "full" (the full and short profiles) or "tiny"
    device: torch.device

    name = "synthetic"
    derives_students = True  # students are derived from the teacher, not loaded

    def build(self, family: Family, name: str, meta: bool = False) -> torch.nn.Module:
        """Build one fp32 component; ``meta=True`` builds it without memory (to count parameters)."""
        component = family.component(name)
        if is_tokenizer(component):
            return offline_tokenizer(component, self.profile)
        if component.derive is not None:
            return component.derive(self.build(family, component.teacher, meta=meta), meta=meta)
        device = torch.device("meta") if meta else self.device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), device:
            torch.manual_seed(component.weight_seed(family.name))
            module = from_config(component.cls, component.config(self.profile))
        return module.eval().requires_grad_(False)

    def scheduler_config(self, family: Family) -> dict:
        return dict(family.scheduler_config)


@dataclass
class HubSource:
    """Loads real weights from hub ids or local directories, through the user's cache.

    ``overrides`` replaces where components come from: ``{"sd1": "./sd15"}`` (a family's own
    components and scheduler) or ``{"sdxl.vae": "madebyollin/sdxl-vae-fp16-fix"}`` (one component).
    """

    device: torch.device = torch.device("cpu")
    overrides: dict[str, str] = field(default_factory=dict)

    name = "hub"
    derives_students = False

    def hub_id(self, family: Family, component: Component) -> HubId:
        hub = component.hub
        if hub is None:
            raise ModelNotAvailable(f"{family.name}'s {component.name} declares no hub id: give one with "
                                    f"--perf-hub {family.name}.{component.name}=REPO")
        override = self.overrides.get(f"{family.name}.{component.name}")
        if override is not None:
            return HubId(override, hub.subfolder)
        if family.name in self.overrides and hub.repo == family.hub_repo:
            return HubId(self.overrides[family.name], hub.subfolder)
        return hub

    def build(self, family: Family, name: str, meta: bool = False):
        """Load one fp32 component (``meta=True`` builds it from its config only)."""
        component = family.component(name)
        hub = self.hub_id(family, component)
        what = f"{component.name} of {family.name}"
        if is_tokenizer(component):
            return _load(component.cls.from_pretrained, hub, what)
        if meta:
            if issubclass(component.cls, PreTrainedModel):
                config = _load(component.cls.config_class.from_pretrained, hub, what)
                with torch.device("meta"):
                    return component.cls(config)
            config = _load(component.cls.load_config, hub, what)
            with torch.device("meta"):
                return component.cls.from_config(config)
        module = _load(component.cls.from_pretrained, hub, what)
        return module.to(self.device).eval().requires_grad_(False)

    def scheduler_config(self, family: Family) -> dict:
        repo = self.overrides.get(family.name, family.hub_repo)
        return dict(_load(family.scheduler.load_config, HubId(repo, "scheduler"), f"scheduler of {family.name}"))


def _load(loader, hub: HubId, what: str):
    """Call a ``from_pretrained``-style loader, turning every way it fails into one ModelNotAvailable line.

    The error is raised with nothing chained to it, so it prints once, wherever it is shown.
    """
    repo, subfolder = hub.repo, hub.subfolder
    directory = Path(repo).expanduser()
    local = is_local(repo)
    if local:
        _check_directory(directory, repo, subfolder)
    kwargs = {"subfolder": subfolder} if subfolder else {}
    try:
        return loader(str(directory) if local else repo, **kwargs)
    except (OSError, ValueError) as error:  # EnvironmentError, LocalEntryNotFoundError, HTTP errors
        reason = _first_line(error)
    raise ModelNotAvailable(_cannot_load(what, repo, local, reason))  # outside the except block: nothing chained


def _check_directory(directory: Path, repo: str, subfolder: str | None) -> None:
    """ModelNotAvailable when a local model directory is missing, or is not a pipeline where one is needed."""
    if not directory.is_dir():
        raise ModelNotAvailable(f"model directory {repo} does not exist")
    if subfolder and not (directory / "model_index.json").is_file():
        raise ModelNotAvailable(
            f"{repo} is not a diffusers pipeline directory (no model_index.json): "
            "save one with pipeline.save_pretrained(DIR) or pass a hub id"
        )


def _cannot_load(what: str, repo: str, local: bool, reason: str) -> str:
    """One line: which component could not be loaded from where, why, and what to do."""
    if local:
        return (f"cannot load the {what} from {repo} ({reason}): save it there with save_pretrained "
                "or pass a hub id")
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    where = "is not in the Hugging Face cache" + (" and HF_HUB_OFFLINE is set" if offline else "")
    return (f"cannot load the {what} of {repo!r}: it {where} or cannot be read ({reason}); "
            f"download it with `hf download {repo}` or pass a local pipeline directory")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:160]


def make_source(profile_name: str, device: torch.device, hub_models: dict | None = None):
    """The component source of a profile."""
    if profile_name == "hub":
        return HubSource(device=device, overrides=dict(hub_models or {}))
    if profile_name not in SYNTHETIC:
        raise ValueError(f"unknown profile {profile_name!r}: choose one of {', '.join(PROFILE_NAMES)}")
    return SyntheticSource(architecture(profile_name), device)


def assemble_pipeline(family: Family, modules: dict, scheduler):
    """The family's pipeline from ready components, ``{slot: module or tokenizer}``, and a scheduler."""
    pipe = family.pipeline(**modules, scheduler=scheduler, **family.pipeline_kwargs)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_synthetic_pipeline(family: Family, profile: str, directory: str | os.PathLike) -> Path:
    """Save a synthetic profile's pipeline with save_pretrained, so the hub loading path can be tried."""
    source = SyntheticSource(architecture(profile), torch.device("cpu"))
    modules = {slot: source.build(family, slot) for slot in family.slots}
    pipe = assemble_pipeline(family, modules, family.make_scheduler(next(iter(family.schedulers))))
    pipe.save_pretrained(directory)
    return Path(directory)
