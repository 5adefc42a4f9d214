"""Errors that xlt reports to a user as one line and a non-zero exit."""


class XltError(Exception):
    """Base class: bad input from the user (config, data, checkpoint, language code)."""


class ConfigError(XltError):
    """A gin file, binding, mesh or run setting that cannot work."""


class DataError(XltError):
    """A corpus, language code, mixture or vocabulary that cannot be used."""


class CheckpointError(XltError):
    """A checkpoint that is missing, corrupt or does not match the model."""


class OutputError(XltError):
    """An output that cannot be written (a full disk, a read-only directory)."""


class NonFiniteLoss(XltError):
    """Training reached a NaN or infinite loss (``TrainConfig.nonfinite='stop'``); no checkpoint holds it."""
