"""Errors users meet: each carries one line naming what is wrong and what to do."""


class StreamfoldError(Exception):
    """Base of every error streamfold reports to users as a single line."""


class ModelError(StreamfoldError):
    """The input model cannot be read or is not a model streamfold can compile."""


class CompileError(StreamfoldError):
    """A construct in the model that streamfold cannot lower to hardware (yet)."""


class FoldFileError(StreamfoldError):
    """A fold file that does not match the model."""


class BuildError(StreamfoldError):
    """A build folder that is missing pieces or comes from another version."""


class SimulationError(StreamfoldError):
    """The simulation could not run or did not finish."""
