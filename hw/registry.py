"""The hardware of a unit: the component its kind's record names, imported when first needed.

Every unit kind (:mod:`streamfold.compiler.units`) names, in its record's ``hardware`` field,
the ``"module:Class"`` of the Amaranth component that elaborates it. The class contract:

* ``cls(unit)`` builds the component from the IR unit object alone;
* it is an :class:`amaranth.lib.wiring.Component` whose stream members are its ports:
  ``i`` (input port 0), ``i1``, ``i2`` ... and ``o`` (output port 0), ``o1`` ..., each
  ``stream.Signature(unsigned(stream.beat_bits))`` of the unit's streams, element 0 in the LSBs;
* it runs in the default ``sync`` clock domain and is fully back-pressured (a beat moves
  exactly when ``valid & ready`` at a clock edge).
"""
from __future__ import annotations

import importlib

from streamfold.compiler.units import kind_of


def hw_class(unit) -> type:
    """The component class of ``unit``'s kind."""
    where = kind_of(unit).hardware
    module, _, name = where.partition(":")
    return getattr(importlib.import_module(module), name)


def build_unit(unit):
    """Instantiate the hardware component of an IR unit."""
    return hw_class(unit)(unit)


def port(component, direction: str, index: int):
    """Stream member ``i``/``o`` (port 0) or ``i<n>``/``o<n>`` of a unit's component."""
    return getattr(component, direction if index == 0 else f"{direction}{index}")
