"""Drawing of the toy world's objects (sprites) and backgrounds with PIL.

A sprite is an RGBA square of side `px` with the object drawn facing right; transparent
outside the object, so its alpha is the object's mask. Shapes are coarse on purpose (frames are
~48-128 px) but each kind has its own silhouette so kinds can be told apart.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from cineneuron.sources.synth.data import world

SUPERSAMPLE = 3  # draw large, then downsample: smooth edges at small sizes
SKIN = (236, 188, 150)
HAIR = (70, 45, 30)
DARK = (40, 40, 48)
WHEEL = (24, 24, 24)
GLASS = (168, 208, 240)
WHITE = (246, 246, 246)
GREY = (150, 150, 156)


def shade(rgb, f: float) -> tuple[int, int, int]:
    """Darken (f<1) or lighten (f>1) a colour; black gets lightened instead, so details show."""
    if max(rgb) < 60:
        return tuple(int(min(255, c + 50 * f)) for c in rgb)
    return tuple(int(max(0, min(255, c * f))) for c in rgb)


class _Box:
    """Maps unit coordinates to canvas pixels, so drawing code reads as fractions of the box."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, *p: float) -> list[float]:
        return [v * self.n for v in p]

    def poly(self, pts) -> list[tuple[float, float]]:
        return [(x * self.n, y * self.n) for x, y in pts]


def _man(d, b, c):
    d.ellipse(b(0.39, 0.02, 0.61, 0.24), fill=SKIN)
    d.chord(b(0.38, 0.0, 0.62, 0.18), 180, 360, fill=HAIR)
    d.rectangle(b(0.34, 0.26, 0.66, 0.62), fill=c)  # shirt
    d.rectangle(b(0.24, 0.27, 0.33, 0.56), fill=c)  # sleeves/arms
    d.rectangle(b(0.67, 0.27, 0.76, 0.56), fill=c)
    d.rectangle(b(0.36, 0.62, 0.48, 0.99), fill=DARK)  # trousers
    d.rectangle(b(0.52, 0.62, 0.64, 0.99), fill=DARK)


def _woman(d, b, c):
    d.ellipse(b(0.33, 0.0, 0.67, 0.42), fill=HAIR)  # long hair behind the head
    d.ellipse(b(0.39, 0.04, 0.61, 0.26), fill=SKIN)
    d.polygon(b.poly([(0.41, 0.27), (0.59, 0.27), (0.76, 0.78), (0.24, 0.78)]), fill=c)  # dress
    d.line(b(0.40, 0.30, 0.28, 0.55), fill=SKIN, width=max(1, b.n // 18))
    d.line(b(0.60, 0.30, 0.72, 0.55), fill=SKIN, width=max(1, b.n // 18))
    d.rectangle(b(0.40, 0.78, 0.46, 0.99), fill=SKIN)
    d.rectangle(b(0.54, 0.78, 0.60, 0.99), fill=SKIN)


def _dog(d, b, c):
    dark = shade(c, 0.7)
    d.line(b(0.2, 0.48, 0.06, 0.26), fill=c, width=max(1, b.n // 14))  # tail up
    for x in (0.2, 0.32, 0.55, 0.67):
        d.rectangle(b(x, 0.6, x + 0.08, 0.92), fill=dark)
    d.ellipse(b(0.14, 0.38, 0.78, 0.7), fill=c)  # body
    d.ellipse(b(0.6, 0.18, 0.9, 0.5), fill=c)  # head
    d.rectangle(b(0.82, 0.32, 0.99, 0.45), fill=c)  # snout
    d.ellipse(b(0.93, 0.31, 0.99, 0.37), fill=DARK)
    d.polygon(b.poly([(0.62, 0.22), (0.7, 0.2), (0.66, 0.45)]), fill=dark)  # floppy ear


def _cat(d, b, c):
    dark = shade(c, 0.7)
    d.arc(b(0.0, 0.15, 0.4, 0.7), 90, 250, fill=c, width=max(1, b.n // 16))  # curled tail
    for x in (0.26, 0.36, 0.56, 0.64):
        d.rectangle(b(x, 0.62, x + 0.05, 0.9), fill=dark)
    d.ellipse(b(0.2, 0.45, 0.74, 0.7), fill=c)  # slim body
    d.ellipse(b(0.6, 0.24, 0.88, 0.52), fill=c)  # head
    d.polygon(b.poly([(0.62, 0.32), (0.64, 0.12), (0.72, 0.27)]), fill=c)  # pointed ears
    d.polygon(b.poly([(0.76, 0.27), (0.84, 0.12), (0.86, 0.32)]), fill=c)
    d.ellipse(b(0.78, 0.33, 0.82, 0.37), fill=(90, 200, 90))


def _bird(d, b, c):
    dark = shade(c, 0.65)
    d.polygon(b.poly([(0.28, 0.5), (0.04, 0.38), (0.06, 0.62)]), fill=dark)  # tail
    d.line(b(0.45, 0.68, 0.42, 0.88), fill=DARK, width=max(1, b.n // 30))
    d.line(b(0.55, 0.68, 0.58, 0.88), fill=DARK, width=max(1, b.n // 30))
    d.ellipse(b(0.22, 0.36, 0.74, 0.72), fill=c)  # body
    d.ellipse(b(0.58, 0.2, 0.84, 0.46), fill=c)  # head
    d.polygon(b.poly([(0.83, 0.3), (0.98, 0.35), (0.83, 0.4)]), fill=(245, 160, 20))  # beak
    d.polygon(b.poly([(0.32, 0.46), (0.6, 0.44), (0.42, 0.2)]), fill=dark)  # raised wing
    d.ellipse(b(0.7, 0.27, 0.75, 0.32), fill=DARK)


def _car(d, b, c):
    d.polygon(b.poly([(0.24, 0.46), (0.34, 0.22), (0.7, 0.22), (0.82, 0.46)]), fill=c)  # cabin
    d.polygon(b.poly([(0.3, 0.44), (0.37, 0.27), (0.5, 0.27), (0.5, 0.44)]), fill=GLASS)
    d.polygon(b.poly([(0.54, 0.44), (0.54, 0.27), (0.67, 0.27), (0.76, 0.44)]), fill=GLASS)
    d.rounded_rectangle(b(0.03, 0.44, 0.97, 0.74), radius=b.n * 0.06, fill=c)  # body
    d.rectangle(b(0.9, 0.5, 0.97, 0.57), fill=(250, 235, 120))  # headlight at the front
    for x in (0.14, 0.64):
        d.ellipse(b(x, 0.6, x + 0.22, 0.82), fill=WHEEL)
        d.ellipse(b(x + 0.07, 0.67, x + 0.15, 0.75), fill=GREY)


def _bus(d, b, c):
    d.rounded_rectangle(b(0.01, 0.16, 0.99, 0.8), radius=b.n * 0.05, fill=c)
    for i in range(5):  # row of windows
        x = 0.05 + i * 0.15
        d.rectangle(b(x, 0.24, x + 0.11, 0.46), fill=GLASS)
    d.rectangle(b(0.84, 0.24, 0.95, 0.72), fill=GLASS)  # door/windscreen at the front
    d.rectangle(b(0.01, 0.54, 0.84, 0.58), fill=shade(c, 0.7))
    for x in (0.1, 0.66):
        d.ellipse(b(x, 0.7, x + 0.2, 0.9), fill=WHEEL)


def _pizza(d, b, c):
    d.ellipse(b(0.04, 0.04, 0.96, 0.96), fill=(206, 150, 80))  # crust
    d.ellipse(b(0.12, 0.12, 0.88, 0.88), fill=c)  # cheese
    for x, y in ((0.3, 0.3), (0.58, 0.24), (0.62, 0.56), (0.3, 0.6), (0.46, 0.42), (0.46, 0.7)):
        d.ellipse(b(x, y, x + 0.12, y + 0.12), fill=(170, 30, 30))  # pepperoni
    d.line(b(0.5, 0.04, 0.5, 0.96), fill=(206, 150, 80), width=max(1, b.n // 40))
    d.line(b(0.04, 0.5, 0.96, 0.5), fill=(206, 150, 80), width=max(1, b.n // 40))


def _apple(d, b, c):
    d.ellipse(b(0.1, 0.22, 0.58, 0.94), fill=c)  # two lobes make the apple's notch
    d.ellipse(b(0.42, 0.22, 0.9, 0.94), fill=c)
    d.ellipse(b(0.24, 0.34, 0.36, 0.48), fill=shade(c, 1.3))
    d.rectangle(b(0.47, 0.06, 0.53, 0.3), fill=(100, 60, 25))  # stem
    d.ellipse(b(0.53, 0.06, 0.78, 0.18), fill=(60, 150, 50))  # leaf


def _chair(d, b, c):
    dark = shade(c, 0.7)
    d.rectangle(b(0.22, 0.04, 0.34, 0.6), fill=c)  # backrest (side view)
    d.rectangle(b(0.22, 0.5, 0.82, 0.6), fill=c)  # seat
    d.rectangle(b(0.24, 0.6, 0.31, 0.97), fill=dark)
    d.rectangle(b(0.73, 0.6, 0.8, 0.97), fill=dark)
    d.rectangle(b(0.22, 0.14, 0.34, 0.2), fill=dark)


def _ball(d, b, c):
    d.ellipse(b(0.08, 0.08, 0.92, 0.92), fill=c)
    w = max(1, b.n // 14)
    d.arc(b(-0.3, 0.08, 0.5, 0.92), 300, 60, fill=WHITE, width=w)  # beach-ball bands
    d.arc(b(0.5, 0.08, 1.3, 0.92), 120, 240, fill=WHITE, width=w)
    d.ellipse(b(0.42, 0.42, 0.58, 0.58), fill=WHITE)


def _cup(d, b, c):
    d.ellipse(b(0.56, 0.36, 0.9, 0.74), outline=c, width=max(1, b.n // 12))  # handle
    d.rectangle(b(0.16, 0.26, 0.68, 0.9), fill=c)  # mug body
    d.ellipse(b(0.16, 0.2, 0.68, 0.32), fill=shade(c, 0.6))  # opening


def _tv(d, b, c):
    d.rectangle(b(0.42, 0.74, 0.58, 0.86), fill=DARK)  # stand
    d.rectangle(b(0.26, 0.84, 0.74, 0.9), fill=DARK)
    d.rectangle(b(0.03, 0.1, 0.97, 0.76), fill=c)  # frame
    d.rectangle(b(0.1, 0.16, 0.9, 0.68), fill=(40, 70, 130))  # screen
    d.polygon(b.poly([(0.1, 0.16), (0.45, 0.16), (0.1, 0.45)]), fill=(90, 130, 200))  # glare


def _laptop(d, b, c):
    d.polygon(b.poly([(0.22, 0.12), (0.86, 0.12), (0.8, 0.64), (0.16, 0.64)]), fill=c)  # lid
    d.polygon(b.poly([(0.27, 0.18), (0.8, 0.18), (0.75, 0.58), (0.22, 0.58)]), fill=GLASS)
    d.polygon(b.poly([(0.14, 0.64), (0.82, 0.64), (0.98, 0.8), (0.02, 0.8)]), fill=shade(c, 0.8))
    for y in (0.68, 0.73):  # keyboard rows
        d.line(b(0.2, y, 0.8, y), fill=shade(c, 0.5), width=max(1, b.n // 40))


def _umbrella(d, b, c):
    w = max(1, b.n // 22)
    d.line(b(0.5, 0.4, 0.5, 0.86), fill=DARK, width=w)  # shaft
    d.arc(b(0.5, 0.76, 0.7, 0.96), 0, 180, fill=DARK, width=w)  # J handle
    d.pieslice(b(0.03, 0.08, 0.97, 0.72), 180, 360, fill=c)  # canopy
    for x in (0.2, 0.5, 0.8):
        d.line(b(0.5, 0.1, x, 0.4), fill=shade(c, 0.65), width=w)


def _clock(d, b, c):
    d.ellipse(b(0.1, 0.02, 0.34, 0.26), fill=shade(c, 0.7))  # alarm bells
    d.ellipse(b(0.66, 0.02, 0.9, 0.26), fill=shade(c, 0.7))
    d.line(b(0.22, 0.9, 0.12, 0.99), fill=DARK, width=max(1, b.n // 16))  # feet
    d.line(b(0.78, 0.9, 0.88, 0.99), fill=DARK, width=max(1, b.n // 16))
    d.ellipse(b(0.08, 0.1, 0.92, 0.94), fill=c)  # rim
    d.ellipse(b(0.17, 0.19, 0.83, 0.85), fill=WHITE)
    for k in range(12):  # ticks
        a = k * np.pi / 6
        x0, y0 = 0.5 + 0.27 * np.cos(a), 0.52 + 0.27 * np.sin(a)
        d.ellipse(b(x0 - 0.02, y0 - 0.02, x0 + 0.02, y0 + 0.02), fill=DARK)
    w = max(1, b.n // 20)
    d.line(b(0.5, 0.52, 0.5, 0.26), fill=DARK, width=w)
    d.line(b(0.5, 0.52, 0.7, 0.6), fill=DARK, width=w)


def _stop_sign(d, b, c):
    d.rectangle(b(0.46, 0.6, 0.54, 1.0), fill=GREY)  # pole
    r, cx, cy = 0.34, 0.5, 0.36
    ang = np.pi / 8 + np.arange(8) * np.pi / 4
    d.polygon(b.poly([(cx + r * np.cos(a), cy + r * np.sin(a)) for a in ang]), fill=WHITE)
    r2 = 0.3
    d.polygon(b.poly([(cx + r2 * np.cos(a), cy + r2 * np.sin(a)) for a in ang]), fill=c)
    d.rectangle(b(0.3, 0.32, 0.7, 0.4), fill=WHITE)  # stands in for the lettering


DRAW = {
    "man": _man, "woman": _woman, "dog": _dog, "cat": _cat, "bird": _bird, "car": _car,
    "bus": _bus, "pizza": _pizza, "apple": _apple, "chair": _chair, "ball": _ball, "cup": _cup,
    "tv": _tv, "laptop": _laptop, "umbrella": _umbrella, "clock": _clock, "stop sign": _stop_sign,
}


def colour_rgb(name: str) -> tuple[int, int, int]:
    return tuple(world()["colours"][name])


@lru_cache(maxsize=4096)
def sprite(kind: str, colour: str, px: int, flip: bool = False) -> Image.Image:
    """RGBA sprite of side px (>=2), facing right, or left when flip."""
    n = max(2, px) * SUPERSAMPLE
    img = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    DRAW[kind](ImageDraw.Draw(img), _Box(n), colour_rgb(colour) + (255,))
    img = img.resize((max(2, px), max(2, px)), Image.BOX)
    return img.transpose(Image.FLIP_LEFT_RIGHT) if flip else img


def _vgrad(d, b, top, bottom, y0: float, y1: float, steps: int = 24):
    """Vertical colour gradient between two rows, as horizontal bands."""
    for i in range(steps):
        t = i / max(1, steps - 1)
        col = tuple(int(top[k] + (bottom[k] - top[k]) * t) for k in range(3))
        ya, yb = y0 + (y1 - y0) * i / steps, y0 + (y1 - y0) * (i + 1) / steps
        d.rectangle(b(0, ya, 1, yb + 0.01), fill=col)


def _bg_kitchen(d, b, rng):
    wall = [(232, 226, 204), (206, 226, 236), (236, 214, 200)][rng.integers(3)]
    d.rectangle(b(0, 0, 1, 1), fill=wall)
    tile = shade(wall, 0.86)
    for k in range(1, 8):  # tiled splashback
        d.line(b(0, 0.4 + k * 0.045, 1, 0.4 + k * 0.045), fill=tile)
        d.line(b(k / 8, 0.4, k / 8, 0.74), fill=tile)
    x = rng.uniform(0.05, 0.55)  # wall cabinet
    d.rectangle(b(x, 0.06, x + 0.4, 0.3), fill=(160, 110, 70))
    d.line(b(x + 0.2, 0.06, x + 0.2, 0.3), fill=(110, 70, 40), width=max(1, b.n // 90))
    top = [(120, 120, 126), (196, 196, 190), (90, 70, 60)][rng.integers(3)]
    d.rectangle(b(0, 0.74, 1, 0.79), fill=top)  # counter top
    d.rectangle(b(0, 0.79, 1, 1), fill=(176, 130, 86))
    for k in range(1, 4):
        d.line(b(k / 4, 0.79, k / 4, 1), fill=(120, 84, 50), width=max(1, b.n // 90))


def _bg_room(d, b, rng):
    wall = [(226, 214, 190), (200, 214, 196), (214, 200, 222), (236, 230, 220)][rng.integers(4)]
    d.rectangle(b(0, 0, 1, 0.8), fill=wall)
    floor = [(150, 100, 60), (176, 136, 96), (120, 90, 70)][rng.integers(3)]
    d.rectangle(b(0, 0.8, 1, 1), fill=floor)
    for k in range(1, 4):  # floor boards
        d.line(b(0, 0.8 + k * 0.05, 1, 0.8 + k * 0.05), fill=shade(floor, 0.8))
    x = rng.uniform(0.05, 0.6)  # window
    d.rectangle(b(x, 0.1, x + 0.3, 0.45), fill=(240, 240, 240))
    d.rectangle(b(x + 0.02, 0.12, x + 0.28, 0.43), fill=(150, 200, 240))
    d.line(b(x + 0.15, 0.12, x + 0.15, 0.43), fill=(240, 240, 240), width=max(1, b.n // 70))
    x2 = (x + 0.45) % 0.8  # picture frame
    d.rectangle(b(x2, 0.18, x2 + 0.15, 0.34), fill=(90, 60, 40))
    d.rectangle(b(x2 + 0.02, 0.2, x2 + 0.13, 0.32), fill=(120, 160, 110))


def _sky(d, b, rng, y1):
    tops = [(90, 150, 230), (120, 170, 235), (240, 170, 120)]
    _vgrad(d, b, tops[rng.integers(3)], (205, 225, 245), 0, y1)
    for _ in range(rng.integers(1, 3)):  # clouds
        x, y = rng.uniform(0, 0.8), rng.uniform(0.05, 0.25)
        d.ellipse(b(x, y, x + 0.22, y + 0.08), fill=(250, 250, 250))


def _bg_road(d, b, rng):
    _sky(d, b, rng, 0.5)
    for _ in range(rng.integers(2, 4)):  # houses on the horizon
        x, h = rng.uniform(0, 0.85), rng.uniform(0.1, 0.2)
        d.rectangle(b(x, 0.5 - h, x + 0.14, 0.5), fill=tuple(int(v) for v in rng.integers(120, 220, 3)))
    d.rectangle(b(0, 0.5, 1, 0.62), fill=(96, 160, 70))  # verge
    d.rectangle(b(0, 0.62, 1, 1), fill=(92, 92, 98))  # asphalt
    for k in range(6):  # dashed centre line
        d.rectangle(b(k / 6 + 0.02, 0.86, k / 6 + 0.1, 0.88), fill=(240, 240, 240))


def _bg_field(d, b, rng):
    _sky(d, b, rng, 0.55)
    x = rng.uniform(0.6, 0.9)
    d.ellipse(b(x, 0.06, x + 0.1, 0.16), fill=(252, 220, 90))  # sun
    d.ellipse(b(-0.2, 0.42, 0.7, 0.75), fill=(80, 140, 60))  # hills
    d.ellipse(b(0.4, 0.45, 1.3, 0.75), fill=(90, 150, 66))
    _vgrad(d, b, (110, 176, 70), (70, 130, 46), 0.58, 1.0, steps=12)


def _bg_beach(d, b, rng):
    _sky(d, b, rng, 0.45)
    d.rectangle(b(0, 0.45, 1, 0.62), fill=(40, 110, 180))  # sea
    d.line(b(0, 0.52, 1, 0.52), fill=(90, 160, 210), width=max(1, b.n // 90))
    d.rectangle(b(0, 0.62, 1, 1), fill=(232, 208, 150))  # sand


BACKGROUNDS = {"kitchen": _bg_kitchen, "room": _bg_room, "road": _bg_road, "field": _bg_field, "beach": _bg_beach}


def background(name: str, size: int, seed: int) -> Image.Image:
    """RGB background of side `size`; `seed` varies colours and placements within the scene type."""
    img = Image.new("RGB", (size, size))
    BACKGROUNDS[name](ImageDraw.Draw(img), _Box(size), np.random.default_rng(seed))
    return img
