"""2-D physics of SynthFoley: falling, bouncing, rolling and spinning discs with exact impact times.

World units: the frame is the unit square, ``x`` to the right, ``y`` downwards; the floor is the line
``y = floor_y``; walls at ``x = 0`` and ``x = 1``. Every object is a disc of radius ``r`` for collision
purposes (polygons are drawn around that disc).

The simulation advances in fixed steps (``substeps_per_frame`` per video frame) but never lets an
impact fall on a step boundary: inside each step it solves for the earliest collision in closed form
(quadratic in time for a falling body meeting the floor, linear for walls and for the *relative*
motion of two bodies), advances every object exactly to that instant, resolves the collision and goes
on. Impact times are therefore exact up to float rounding for floor and wall hits, and exact to well
under a millisecond for pair collisions (the only linearisation: two bodies' relative acceleration,
non-zero only when one of them rests on the floor, is ignored within one 10 ms step — a position error
below 0.01 px). The sound engine places each onset at the recorded time, so audio and video agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

WAIT, FLY, FLOOR = 0, 1, 2

# Impact speeds (world units / s) below which a landing settles the object silently; above it, the
# impact is an event. Keeping the two equal means every event is loud enough to be heard (strength
# >= V_SETTLE / V_REF) and no stream of inaudible micro-bounces reaches the event list.
V_SETTLE = 0.45
V_REF = 3.2  # impact speed that maps to strength 1.0 (a drop from above the frame onto the floor)
V_ROLL_MIN = 0.05  # rolling slower than this is silent
V_ROLL_REF = 0.8  # rolling speed that maps to full rumble level (rolls are much slower than impacts)
OMEGA_SPIN_REF = 30.0  # rad/s that maps to full whirr level
OMEGA_SPIN_MIN = 3.0  # rad/s; spinning slower than this is silent


@dataclass
class Body:
    """One object's physical state and parameters (mutable during the simulation)."""

    cls: str
    radius: float
    mass: float
    restitution: float
    roll_friction: float  # horizontal deceleration on the floor, units/s^2
    spin_friction: float  # angular deceleration on the floor, rad/s^2
    roller: bool  # rolls on the floor (angular speed follows vx / r) and makes a rolling sound
    spinner: bool  # starts spinning when it settles
    spin_on_settle: float  # rad/s given to a spinner when it settles
    spawn_time: float
    room: int  # 0 = on screen; >= 1 = an off-screen room (same geometry, never drawn)
    x: float
    y: float
    vx: float
    vy: float
    angle: float = 0.0
    omega: float = 0.0
    mode: int = WAIT
    recent: list[float] = field(default_factory=list)  # times of recent pair collisions (anti-jitter)


@dataclass
class Impact:
    """An impact: ``time`` (s), body index, what it hit, impact speed (units/s), where."""

    time: float
    body: int
    other: str  # "floor", "wall" or "object:<j>"
    speed: float
    x: float
    y: float


@dataclass
class Trajectory:
    """What the simulation recorded.

    Attributes:
        frame_pos: ``[F, N, 2]`` body centres (x, y) at frame times ``f / fps``.
        frame_angle: ``[F, N]`` body angles (rad) at frame times.
        frame_present: ``[F, N]`` bool, body spawned (and so drawn, if in room 0).
        step_times: ``[K]`` times of the control samples (every physics step).
        roll_speed: ``[K, N]`` |vx| of bodies rolling on the floor (0 otherwise).
        spin_rate: ``[K, N]`` |omega| of non-rolling bodies spinning on the floor (0 otherwise).
        impacts: every impact, sorted by time.
    """

    frame_pos: np.ndarray
    frame_angle: np.ndarray
    frame_present: np.ndarray
    step_times: np.ndarray
    roll_speed: np.ndarray
    spin_rate: np.ndarray
    impacts: list[Impact]


def _advance(b: Body, tau: float, gravity: float) -> None:
    """Move body ``b`` forward by ``tau`` seconds along its analytic path (no collisions inside)."""
    if b.mode == FLY:
        b.x += b.vx * tau
        b.y += b.vy * tau + 0.5 * gravity * tau * tau
        b.vy += gravity * tau
        b.angle += b.omega * tau
    elif b.mode == FLOOR:
        if b.vx != 0.0:
            sign = 1.0 if b.vx > 0 else -1.0
            t_stop = abs(b.vx) / b.roll_friction
            t = min(tau, t_stop)
            b.x += b.vx * t - 0.5 * sign * b.roll_friction * t * t
            b.vx = 0.0 if t >= t_stop else b.vx - sign * b.roll_friction * t
        if b.roller:
            b.omega = b.vx / b.radius
            b.angle += b.omega * tau  # rolling without slipping (vx changes little within a step)
        elif b.omega != 0.0:
            sign = 1.0 if b.omega > 0 else -1.0
            t_stop = abs(b.omega) / b.spin_friction
            t = min(tau, t_stop)
            b.angle += b.omega * t - 0.5 * sign * b.spin_friction * t * t
            b.omega = 0.0 if t >= t_stop else b.omega - sign * b.spin_friction * t


def _first_root(a: float, b: float, c: float, lo: float, hi: float) -> float | None:
    """Smallest root of ``a t^2 + b t + c = 0`` in ``(lo, hi]``, or None."""
    if abs(a) < 1e-12:
        if abs(b) < 1e-12:
            return None
        t = -c / b
        return t if lo < t <= hi else None
    disc = b * b - 4 * a * c
    if disc < 0:
        return None
    sq = math.sqrt(disc)
    roots = sorted(((-b - sq) / (2 * a), (-b + sq) / (2 * a)))
    for t in roots:
        if lo < t <= hi:
            return t
    return None


def _wall_time(b: Body, horizon: float) -> float | None:
    """Time until ``b`` touches a side wall while moving towards it."""
    if b.vx > 0:
        gap = 1.0 - b.radius - b.x
    elif b.vx < 0:
        gap = b.x - b.radius
    else:
        return None
    if gap <= 0:
        return 0.0  # touching and moving outwards: bounce now
    speed = abs(b.vx)
    if b.mode == FLOOR:  # decelerating: gap = speed t - 0.5 mu t^2
        return _first_root(-0.5 * b.roll_friction, speed, -gap, 0.0, min(horizon, speed / b.roll_friction))
    t = gap / speed
    return t if t <= horizon else None


def _floor_time(b: Body, floor_y: float, gravity: float, horizon: float) -> float | None:
    """Time until a flying ``b`` meets the floor while moving down (closed form)."""
    gap = floor_y - b.radius - b.y
    if gap <= 0 and b.vy > 0:
        return 0.0
    return _first_root(0.5 * gravity, b.vy, -gap, 0.0, horizon)


def _pair_time(p: Body, q: Body, horizon: float) -> float | None:
    """Time until discs ``p`` and ``q`` touch while approaching (relative motion linearised)."""
    dx, dy = q.x - p.x, q.y - p.y
    dvx, dvy = q.vx - p.vx, q.vy - p.vy
    reach = p.radius + q.radius
    approach = dx * dvx + dy * dvy
    if approach >= 0:
        return None  # separating or at rest relative to each other
    dist2 = dx * dx + dy * dy
    if dist2 <= reach * reach:
        return 0.0  # overlapping and approaching: resolve now
    # quick reject: too far apart to meet within the horizon
    rel_speed = math.sqrt(dvx * dvx + dvy * dvy)
    if math.sqrt(dist2) - reach > rel_speed * horizon + 1e-9:
        return None
    a = dvx * dvx + dvy * dvy
    return _first_root(a, 2 * approach, dist2 - reach * reach, 0.0, horizon)


def _settle(b: Body, floor_y: float) -> None:
    b.mode = FLOOR
    b.vy = 0.0
    b.y = floor_y - b.radius
    if b.roller:
        b.omega = b.vx / b.radius
    elif b.spinner:
        b.omega = math.copysign(b.spin_on_settle, b.omega if b.omega != 0 else 1.0)
        b.vx *= 0.3  # a spinning object stays roughly where it landed
    else:
        b.omega = 0.0


def simulate(
    bodies: list[Body],
    *,
    gravity: float,
    floor_y: float,
    duration: float,
    fps: float,
    substeps_per_frame: int,
    num_frames: int,
) -> Trajectory:
    """Run the simulation for ``duration`` seconds and record frames, control curves and impacts."""
    n = len(bodies)
    dt = 1.0 / (fps * substeps_per_frame)
    num_steps = math.ceil(duration / dt - 1e-9)
    frame_pos = np.zeros((num_frames, n, 2), np.float32)
    frame_angle = np.zeros((num_frames, n), np.float32)
    frame_present = np.zeros((num_frames, n), bool)
    step_times = np.arange(num_steps + 1) * dt
    roll_speed = np.zeros((num_steps + 1, n), np.float32)
    spin_rate = np.zeros((num_steps + 1, n), np.float32)
    impacts: list[Impact] = []
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n) if bodies[i].room == bodies[j].room]

    def record(k: int) -> None:
        for i, b in enumerate(bodies):
            if b.mode == FLOOR:
                if b.roller:
                    roll_speed[k, i] = abs(b.vx)
                else:
                    spin_rate[k, i] = abs(b.omega)
        if k % substeps_per_frame == 0 and k // substeps_per_frame < num_frames:
            f = k // substeps_per_frame
            for i, b in enumerate(bodies):
                frame_pos[f, i] = (b.x, b.y)
                frame_angle[f, i] = b.angle
                frame_present[f, i] = b.mode != WAIT

    for k in range(num_steps + 1):
        t_now = k * dt
        for b in bodies:
            if b.mode == WAIT and b.spawn_time <= t_now + 1e-9:
                b.mode = FLY
        record(k)
        if k == num_steps:
            break
        remaining = dt
        for _guard in range(64):  # collisions inside one step; 64 is far above any real count
            best_t, best = remaining, None
            for i, b in enumerate(bodies):
                if b.mode == WAIT:
                    continue
                if b.mode == FLY:
                    t = _floor_time(b, floor_y, gravity, best_t)
                    if t is not None and t < best_t:
                        best_t, best = t, ("floor", i, -1)
                t = _wall_time(b, best_t)
                if t is not None and t < best_t:
                    best_t, best = t, ("wall", i, -1)
            for i, j in pairs:
                p, q = bodies[i], bodies[j]
                if p.mode == WAIT or q.mode == WAIT:
                    continue
                t = _pair_time(p, q, best_t)
                if t is not None and t < best_t:
                    best_t, best = t, ("pair", i, j)
            for b in bodies:
                if b.mode != WAIT:
                    _advance(b, best_t, gravity)
            remaining -= best_t
            t_event = t_now + dt - remaining
            if best is None:
                break
            _resolve(bodies, best, t_event, floor_y, impacts)
    impacts.sort(key=lambda imp: (imp.time, imp.body))
    return Trajectory(frame_pos, frame_angle, frame_present, step_times, roll_speed, spin_rate, impacts)


def _resolve(bodies: list[Body], what: tuple[str, int, int], t: float, floor_y: float, impacts: list[Impact]) -> None:
    kind, i, j = what
    b = bodies[i]
    if kind == "floor":
        speed = max(b.vy, 0.0)
        b.y = floor_y - b.radius
        if speed < V_SETTLE:
            _settle(b, floor_y)
            return
        impacts.append(Impact(t, i, "floor", speed, b.x, b.y))
        b.vy = -b.restitution * speed
        b.vx *= 0.85  # floor friction during the contact
        b.omega = 0.7 * b.omega + (b.vx / b.radius if b.roller else 0.0) * 0.3
        if -b.vy < V_SETTLE:  # the rebound would be a hop too small to hear: settle now
            _settle(b, floor_y)
        return
    if kind == "wall":
        speed = abs(b.vx)
        b.x = min(max(b.x, b.radius), 1.0 - b.radius)
        b.vx = -b.restitution * b.vx
        if speed >= V_SETTLE:
            impacts.append(Impact(t, i, "wall", speed, b.x, b.y))
        return
    # pair collision: impulse along the line of centres
    p, q = b, bodies[j]
    dx, dy = q.x - p.x, q.y - p.y
    dist = math.hypot(dx, dy) or 1e-9
    nx, ny = dx / dist, dy / dist
    v_rel = (q.vx - p.vx) * nx + (q.vy - p.vy) * ny  # < 0: approaching
    if v_rel >= 0:
        return
    e = min(p.restitution, q.restitution)
    jimp = -(1 + e) * v_rel / (1 / p.mass + 1 / q.mass)
    p.vx -= jimp / p.mass * nx
    p.vy -= jimp / p.mass * ny
    q.vx += jimp / q.mass * nx
    q.vy += jimp / q.mass * ny
    for body in (p, q):
        if body.mode == FLOOR:
            if body.vy < -V_SETTLE:
                body.mode = FLY  # knocked upwards off the floor
            else:
                body.vy = 0.0  # the floor absorbs a downward push
    # If the floor absorbed the push, the pair may still be approaching, which would re-trigger this
    # collision at the same instant. Give the body that is free to move the missing separation.
    v_after = (q.vx - p.vx) * nx + (q.vy - p.vy) * ny
    if v_after < 0.05:
        need = 0.05 - v_after
        if q.mode == FLY or (p.mode != FLY and q.y <= p.y):
            q.vx += need * nx
            q.vy += need * ny if q.mode == FLY else 0.0
            if q.mode != FLY:
                q.vx += math.copysign(need, nx or 1.0)
        else:
            p.vx -= need * nx
            p.vy -= need * ny if p.mode == FLY else 0.0
            if p.mode != FLY:
                p.vx -= math.copysign(need, nx or 1.0)
    # A body lying on another one would collide forever with tiny impulses: after a few contacts in
    # quick succession, push the pair apart sideways so the upper one slides off.
    p.recent = [s for s in p.recent if t - s < 0.15] + [t]
    if len(p.recent) >= 3:
        side = 1.0 if p.x >= q.x else -1.0
        upper = p if p.y < q.y else q
        upper.vx += (side if upper is p else -side) * 0.6
        p.recent.clear()
    speed = -v_rel
    if speed >= V_SETTLE:
        cx, cy = p.x + nx * p.radius, p.y + ny * p.radius
        impacts.append(Impact(t, i, f"object:{j}", speed, cx, cy))
        impacts.append(Impact(t, j, f"object:{i}", speed, cx, cy))
