"""Unit kind -> hardware component class.

Every IR unit kind (``Unit.kind`` in :mod:`streamfold.compiler.ir`) that can be turned into
hardware has one component class registered here. The class contract:

* ``cls(unit)`` builds the component from the IR unit object alone;
* it is an :class:`amaranth.lib.wiring.Component` with exactly two stream members,
  ``i: In(stream.Signature(unsigned(unit.in_stream.beat_bits)))`` and
  ``o: Out(stream.Signature(unsigned(unit.out_stream.beat_bits)))``, element 0 in the LSBs;
* it runs in the default ``sync`` clock domain and is fully back-pressured (a beat moves
  exactly when ``valid & ready`` at a clock edge).

New kinds plug in with the :func:`register_hw` decorator::

    @register_hw("pool")
    class PoolHW(wiring.Component):
        def __init__(self, unit): ...
"""
from __future__ import annotations

HW_UNITS: dict[str, type] = {}


def register_hw(kind: str):
    """Class decorator: register the hardware component class of the unit kind ``kind``."""
    def deco(cls):
        HW_UNITS[kind] = cls
        return cls
    return deco


def hw_class(kind: str) -> type:
    """The component class registered for ``kind``."""
    _load_builtin()
    try:
        return HW_UNITS[kind]
    except KeyError:
        raise NotImplementedError(f"no hardware for unit kind {kind!r}; known kinds: "
                                  f"{sorted(HW_UNITS)}") from None


def build_unit(unit):
    """Instantiate the hardware component of an IR unit."""
    return hw_class(unit.kind)(unit)


def _load_builtin() -> None:
    # importing the modules runs their @register_hw decorators
    from . import mvau  # noqa: F401
