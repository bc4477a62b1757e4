"""``generate_clip``: one SynthFoley clip (frames, audio, events) from ``(split, seed, index)``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from foleygen.data.synthfoley import physics, render, sounds
from foleygen.data.synthfoley.config import CLASSES, GENERATOR_VERSION, SynthFoleyConfig, clip_rng

# Physical character of each class: restitution (bounciness), density (mass = density * r^2), and
# whether it is round (can roll).
_RESTITUTION = {"wood": 0.45, "metal": 0.5, "glass": 0.4, "drum": 0.55, "rubber": 0.8, "paper": 0.2}
_DENSITY = {"wood": 0.7, "metal": 1.5, "glass": 1.0, "drum": 0.8, "rubber": 0.9, "paper": 0.3}
_ROUND = {"metal", "rubber"}
_NOMINAL_RADIUS = 0.075  # world units; smaller objects sound higher


@dataclass
class SynthClip:
    """One SynthFoley clip.

    Attributes:
        frames: ``uint8 [F, H, W, 3]``; frame ``i`` shows the scene at ``i / fps``.
        audio: ``float32 [S]`` mono in [-1, 1].
        events: sorted by time; dicts with ``time`` (s), ``class``, ``kind`` ("impact" | "roll" |
            "spin"), ``strength`` in [0, 1], ``offscreen`` (bool), ``object`` (index), ``x``/``y``
            (position in the frame, 0..1) and, for "roll"/"spin", ``end`` (s); impacts also name what
            was hit in ``with`` ("floor", "wall", "object:<j>").
    """

    split: str
    seed: int
    index: int
    config: SynthFoleyConfig
    frames: np.ndarray
    audio: np.ndarray
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.config.duration

    @property
    def fps(self) -> float:
        return self.config.fps

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    def metadata(self) -> dict[str, Any]:
        """The JSON side-car: duration, rates, provenance and events."""
        return {
            "duration": self.config.duration,
            "fps": self.config.fps,
            "sample_rate": self.config.sample_rate,
            "size": self.config.size,
            "split": self.split,
            "seed": self.seed,
            "index": self.index,
            "generator_version": GENERATOR_VERSION,
            "events": self.events,
        }


def _make_bodies(
    rng: np.random.Generator, config: SynthFoleyConfig, num_onscreen: int, num_offscreen: int
) -> list[physics.Body]:
    bodies = []
    late = rng.uniform() < config.p_late_start
    first = rng.uniform(1.0, 2.0) if late else rng.uniform(0.0, 0.3)
    last_spawn = max(first, 0.7 * config.duration)
    # spread the drop positions across the frame so objects rarely land on each other exactly
    lanes = rng.permutation(np.linspace(0.15, 0.85, max(num_onscreen, 2)))
    for k in range(num_onscreen + num_offscreen):
        cls = CLASSES[int(rng.integers(len(CLASSES)))]
        radius = rng.uniform(0.055, 0.1)
        roller = cls in _ROUND and rng.uniform() < config.p_roll
        spinner = (not roller) and rng.uniform() < config.p_spin
        spawn = first if k == 0 else rng.uniform(first, last_spawn)
        x = float(np.clip(lanes[k % len(lanes)] + rng.uniform(-0.05, 0.05), radius, 1 - radius))
        vx = rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.4) if roller else rng.uniform(-0.3, 0.3)
        bodies.append(
            physics.Body(
                cls=cls,
                radius=radius,
                mass=_DENSITY[cls] * radius**2,
                restitution=float(np.clip(_RESTITUTION[cls] + rng.uniform(-0.05, 0.05), 0.05, 0.92)),
                roll_friction=rng.uniform(0.1, 0.25) if roller else 3.0,
                spin_friction=rng.uniform(6.0, 15.0),
                roller=roller,
                spinner=spinner,
                spin_on_settle=rng.uniform(12.0, 30.0),
                spawn_time=float(spawn),
                room=0 if k < num_onscreen else 1,
                x=x,
                y=-radius - rng.uniform(0.0, 0.15),
                vx=float(vx),
                vy=rng.uniform(0.0, 1.0),
                angle=rng.uniform(0, 2 * np.pi),
                omega=rng.uniform(-6.0, 6.0),
            )
        )
    return bodies


def _segments(active: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` index ranges where ``active`` is True."""
    padded = np.concatenate([[False], active, [False]]).astype(np.int8)
    d = np.diff(padded)
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1), strict=True))


def generate_clip(split: str, seed: int, index: int, config: SynthFoleyConfig | None = None) -> SynthClip:
    """Generate clip ``index`` of ``split`` with base ``seed``; a pure function of its arguments.

    Returns frames ``uint8 [F, size, size, 3]``, audio ``float32 [S]`` and the events (see
    :class:`SynthClip`). Off-screen objects are simulated in their own room (same geometry), never
    drawn, and their events carry ``offscreen=True``.
    """
    config = config or SynthFoleyConfig()
    rng = clip_rng(split, seed, index)
    # Independent sub-streams: the scene, the background and the sound textures. Drawing the
    # background from its own stream keeps it independent of everything audible.
    scene_rng, bg_rng, sound_rng = (np.random.Generator(np.random.PCG64(s)) for s in rng.integers(0, 2**63, 3))
    sr, num_samples = config.sample_rate, config.num_samples

    num_on = int(scene_rng.integers(config.min_objects, config.max_objects + 1))
    num_off = int(scene_rng.uniform() < config.p_offscreen)
    bodies = _make_bodies(scene_rng, config, num_on, num_off)
    gravity = scene_rng.uniform(4.0, 5.5)
    floor_y = scene_rng.uniform(0.82, 0.92)
    pitch = [(_NOMINAL_RADIUS / b.radius) ** 0.6 * scene_rng.uniform(0.9, 1.1) for b in bodies]
    decay = [scene_rng.uniform(0.85, 1.2) for _ in bodies]
    noise_db = scene_rng.uniform(*config.noise_db)

    traj = physics.simulate(
        bodies,
        gravity=gravity,
        floor_y=floor_y,
        duration=config.duration,
        fps=config.fps,
        substeps_per_frame=config.substeps_per_frame,
        num_frames=config.num_frames,
    )

    audio = np.zeros(num_samples, np.float32)
    events: list[dict[str, Any]] = []
    for imp in traj.impacts:
        if imp.time >= config.duration:
            continue
        b = bodies[imp.body]
        strength = float(np.clip(imp.speed / physics.V_REF, 0.0, 1.0))
        start = math.ceil(imp.time * sr - 1e-9)  # the first sample at or after the impact
        if start >= num_samples:
            continue
        wav = sounds.impact_sound(
            b.cls,
            strength,
            pitch[imp.body] * sound_rng.uniform(0.97, 1.03),
            decay[imp.body] * sound_rng.uniform(0.9, 1.1),
            sound_rng,
            sr,
            num_samples - start,
        )
        audio[start : start + len(wav)] += wav
        offscreen = b.room != 0 or not (0.0 <= imp.x <= 1.0 and 0.0 <= imp.y <= 1.0)
        events.append(
            {
                "time": round(imp.time, 6),
                "class": b.cls,
                "kind": "impact",
                "strength": round(strength, 4),
                "offscreen": bool(offscreen),
                "object": imp.body,
                "with": imp.other,
                "x": round(float(imp.x), 4),
                "y": round(float(imp.y), 4),
            }
        )

    roll = np.where(traj.roll_speed > physics.V_ROLL_MIN, traj.roll_speed, 0.0)
    spin = np.where(traj.spin_rate > physics.OMEGA_SPIN_MIN, traj.spin_rate, 0.0)
    for i, b in enumerate(bodies):
        for kind, curve, ref in (
            ("roll", roll[:, i], physics.V_ROLL_REF),
            ("spin", spin[:, i], physics.OMEGA_SPIN_REF),
        ):
            if not curve.any():
                continue
            if kind == "roll":
                audio += sounds.rolling_sound(curve, traj.step_times, b.cls, b.radius, sound_rng, sr, num_samples, ref)
            else:
                audio += sounds.spinning_sound(curve, traj.step_times, b.cls, sound_rng, sr, num_samples, ref)
            for s, e in _segments(curve > 0):
                t0, t1 = float(traj.step_times[s]), float(traj.step_times[min(e, len(curve) - 1)])
                if t0 >= config.duration:
                    continue
                k = int(s)
                events.append(
                    {
                        "time": round(t0, 6),
                        "end": round(min(t1, config.duration), 6),
                        "class": b.cls,
                        "kind": kind,
                        "strength": round(float(np.clip(curve[s:e].max() / ref, 0, 1)), 4),
                        "offscreen": b.room != 0,
                        "object": i,
                        "x": round(
                            float(traj.frame_pos[min(k // config.substeps_per_frame, config.num_frames - 1), i, 0]), 4
                        ),
                        "y": round(float(floor_y - b.radius), 4),
                    }
                )
    audio += sounds.background_noise(sound_rng, sr, num_samples, noise_db)
    audio = np.tanh(audio).astype(np.float32)  # a soft limiter: linear for quiet sounds, never clips
    events.sort(key=lambda ev: (ev["time"], ev["object"], ev["kind"]))

    size = config.size
    background = render.make_background(bg_rng, size, floor_y)
    appearances = [render.make_appearance(b.cls, b.radius * size, scene_rng) if b.room == 0 else None for b in bodies]
    frames = render.render_frames(background, appearances, traj.frame_pos, traj.frame_angle, traj.frame_present)
    return SynthClip(split, int(seed), int(index), config, frames, audio, events)
