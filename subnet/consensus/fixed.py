"""Integer emulation of substrate-fixed's I32F32 / I64F64 arithmetic (as subtensor uses it).

Values are Python ints holding the raw bits (`x * 2**32` for I32F32). Multiplication floors
(arithmetic shift), division truncates toward zero, conversions to integers floor: exactly the
`fixed` crate's semantics, so results match the chain bit for bit.
"""

from __future__ import annotations

import math
from fractions import Fraction

FRAC = 32
ONE = 1 << FRAC
HALF = 1 << (FRAC - 1)
U16_MAX = 65535
I64_MAX = (1 << 63) - 1
I64_MIN = -(1 << 63)


def sat(x: int) -> int:
    """Saturate raw bits to the I32F32 range (i64)."""
    return I64_MAX if x > I64_MAX else I64_MIN if x < I64_MIN else x


def mul(a: int, b: int) -> int:
    """I32F32 `a * b`: full product shifted right, i.e. floored."""
    return (a * b) >> FRAC


def div(a: int, b: int) -> int:
    """I32F32 `a.safe_div(b)`: `(a << 32) / b` truncated toward zero; 0 when b == 0."""
    if b == 0:
        return 0
    num = a << FRAC
    q = abs(num) // abs(b)
    return q if (num >= 0) == (b > 0) else -q


def from_u16_proportion(x: int) -> int:
    """`u16 -> I32F32` proportion: I32F32(x) / I32F32(65535)."""
    return (x << FRAC) // U16_MAX


def to_u16(x: int) -> int:
    """`fixed_proportion_to_u16`: floor(x * 65535) saturated to u16."""
    v = (x * U16_MAX) >> FRAC
    return 0 if v < 0 else U16_MAX if v > U16_MAX else v


def i64f64_from_number(x: float | int) -> int:
    """Raw I64F64 bits of a non-negative stake value (ints exact; floats via their exact value)."""
    if isinstance(x, int):
        return x << 64
    return math.floor(Fraction(x) * (1 << 64))


def round_to_int(x: int) -> int:
    """I32F32 `round()` (ties away from zero) then to integer."""
    if x >= 0:
        return (x + HALF) >> FRAC
    return -((-x + HALF) >> FRAC)


def exp(x: int) -> int:
    """I32F32 exp of an input clamped to [-20, 20] (`exp_safe`).

    substrate-fixed evaluates a series; this uses the correctly rounded value, which can differ
    from the chain in the last bit (2**-32). Only liquid alpha uses exp.
    """
    lo, hi = -20 * ONE, 20 * ONE
    x = lo if x < lo else hi if x > hi else x
    return sat(round(math.exp(x / ONE) * ONE))


def to_float(x: int) -> float:
    return x / ONE
