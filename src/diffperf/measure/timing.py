"""Timed pipeline calls: end-to-end latency with per-stage times.

Stages are delimited by diffusers' own hooks, with the device synchronised at each boundary:
text encoding ends when ``encode_prompt`` returns; the denoising loop ends at the last
``callback_on_step_end``; decoding (VAE decode and post-processing) ends when the call returns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch

STAGES = ("text_encoding", "denoising", "decoding")


@dataclass
class StageClock:
    """Timestamps of the stage boundaries of the last call."""

    synchronize: callable
    marks: dict = field(default_factory=dict)

    def mark(self, name: str) -> None:
        self.synchronize()
        self.marks[name] = time.perf_counter()

    def durations(self) -> dict:
        marks = self.marks
        return {
            "text_encoding": marks["encoded"] - marks["start"],
            "denoising": marks["denoised"] - marks["encoded"],
            "decoding": marks["end"] - marks["denoised"],
        }


class TimedPipeline:
    """Runs one pipeline on one scenario, recording stage times on every call.

    ``arguments`` are the call's arguments (the variant's call plan: diffperf.models.calls.CallPlan); None: the
    scenario's own."""

    def __init__(self, pipe, scenario, instrument, settings, arguments: dict | None = None):
        self.pipe = pipe
        self.scenario = scenario
        self.arguments = dict(scenario.pipeline_kwargs() if arguments is None else arguments)
        self.instrument = instrument
        self.settings = settings  # context manager factory of the variant's runtime switches
        self.clock = StageClock(instrument.synchronize)
        self.stage_history: list[dict] = []
        encode_prompt = pipe.encode_prompt

        def timed_encode_prompt(*args, **kwargs):
            result = encode_prompt(*args, **kwargs)
            self.clock.mark("encoded")
            return result

        pipe.encode_prompt = timed_encode_prompt

    def _on_step_end(self, pipe, step, timestep, callback_kwargs):
        if step == pipe.num_timesteps - 1:
            self.clock.mark("denoised")
        return callback_kwargs

    @torch.inference_mode()
    def __call__(self, output_type: str = "np"):
        """One end-to-end call; returns the pipeline output. The device is idle when it returns."""
        generator = torch.Generator(device="cpu").manual_seed(self.scenario.seed)
        with self.settings():
            self.clock.mark("start")
            output = self.pipe(
                **self.arguments,
                generator=generator,
                output_type=output_type,
                callback_on_step_end=self._on_step_end,
            )
            self.clock.mark("end")
        self.stage_history.append(self.clock.durations())
        return output
