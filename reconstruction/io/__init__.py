"""Imaging I/O: volumes (DICOM, NIfTI, NRRD), X-ray pairs, de-identification, archives."""

from reconstruction.io.archive import ArchiveLimits, safe_extract_zip
from reconstruction.io.deid import deidentify_dataset, deidentify_series
from reconstruction.io.volumes import (
    read_dicom_series,
    read_nifti,
    read_nrrd,
    read_volume,
    write_dicom_series,
    write_nifti,
    write_nrrd,
)
from reconstruction.io.xray import (
    XrayPair,
    XrayView,
    read_xray_pair,
    write_dicom_xray,
    write_xray_pair,
)

__all__ = [
    "ArchiveLimits",
    "XrayPair",
    "XrayView",
    "deidentify_dataset",
    "deidentify_series",
    "read_dicom_series",
    "read_nifti",
    "read_nrrd",
    "read_volume",
    "read_xray_pair",
    "safe_extract_zip",
    "write_dicom_series",
    "write_dicom_xray",
    "write_nifti",
    "write_nrrd",
    "write_xray_pair",
]
