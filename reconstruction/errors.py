"""Errors raised by the science core. Each message names the problem for a person."""


class ImagingError(ValueError):
    """Base class: the input cannot be used as given (bad file, bad geometry, wrong data)."""


class CorruptFileError(ImagingError):
    """The file is truncated, unreadable or not of the claimed format."""


class SeriesError(ImagingError):
    """A DICOM series is inconsistent: missing/duplicate slices, uneven spacing, mixed series."""


class ModalityError(ImagingError):
    """The data is of the wrong kind (e.g. MR where CT is required, 2D where 3D is required)."""


class GeometryError(ImagingError):
    """Projection geometry is missing, inconsistent or out of the supported range."""


class ArchiveError(ImagingError):
    """An uploaded archive is hostile or absurd (path traversal, links, zip bomb)."""
