"""De-identification of DICOM on ingest (before anything is stored).

Based on the DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile
(table E.1-1), with these choices:
- Table actions: X remove, Z empty, D dummy value, U replace UID.
- Patient name and ID become one pseudonym, a keyed hash (HMAC-SHA256) of the original
  patient ID, so one patient stays one pseudonym across uploads with the same key.
- Every UID that is not a standard DICOM UID (root 1.2.840.10008) is re-mapped to
  2.25.<128-bit keyed hash>: consistent across files, series and the file meta header,
  irreversible without the key.
- Beyond the table, conservatively ("clean" options): all private tags, curves and
  overlays, every other person name (PN), free text (LT/ST/UT), date/time (DA/DT/TM) and
  unknown-VR (UN) element are removed or emptied, in nested sequences too; the 128-byte
  preamble is zeroed and the file meta application titles removed.
- Images flagged BurnedInAnnotation = YES are refused: pixels cannot be cleaned here.
Geometry, pixel data and acquisition physics (spacing, orientation, kVp, rescale) stay.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import os
from collections.abc import Sequence
from pathlib import Path

import pydicom
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag

from reconstruction.errors import CorruptFileError, ImagingError
from reconstruction.io._atomic import atomic_directory
from reconstruction.io.volumes import iter_dicom_paths

METHOD = "DICOM PS3.15 E.1 Basic Profile; clean descriptors/dates/private; keyed-hash UIDs (kneestudy deid v1)"
MIN_KEY_BYTES = 16
STANDARD_UID_ROOT = "1.2.840.10008."
DUMMY_NAME = "ANONYMOUS"

_REMOVE = """
AccessionNumber:Z AcquisitionComments AcquisitionContextSequence AcquisitionDate AcquisitionDateTime
AcquisitionDeviceProcessingDescription AcquisitionProtocolDescription AcquisitionTime
ActualHumanPerformersSequence AdditionalPatientHistory AdmissionID AdmittingDate
AdmittingDiagnosesCodeSequence AdmittingDiagnosesDescription AdmittingTime Allergies
AuthorObserverSequence BranchOfService CassetteID CommentsOnThePerformedProcedureStep
ConfidentialityConstraintOnPatientDataDescription ContentCreatorName:Z
ContentCreatorIdentificationCodeSequence ContentDate:Z ContentTime:Z ContentSequence
ContrastBolusAgent:D ContributionDescription CountryOfResidence CurrentPatientLocation
CustodialOrganizationSequence DataSetTrailingPadding DerivationDescription DetectorID
DeviceSerialNumber DigitalSignaturesSequence DischargeDiagnosisDescription DistributionAddress
DistributionName EthnicGroup FillerOrderNumberImagingServiceRequest:Z FrameComments GantryID
GeneratorID GraphicAnnotationSequence HumanPerformerName HumanPerformerOrganization
IconImageSequence IdentifyingComments ImageComments ImagePresentationComments
ImagingServiceRequestComments Impressions InstanceCreationDate InstanceCreationTime
InstitutionAddress InstitutionCodeSequence InstitutionName InstitutionalDepartmentName
InsurancePlanIdentification IntendedRecipientsOfResultsIdentificationSequence
InterpretationApproverSequence InterpretationAuthor InterpretationDiagnosisDescription
InterpretationIDIssuer InterpretationRecorder InterpretationText InterpretationTranscriber
IssuerOfAdmissionID IssuerOfPatientID IssuerOfServiceEpisodeID MAC MedicalAlerts
MedicalRecordLocator MilitaryRank ModifiedAttributesSequence ModifiedImageDescription
ModifyingDeviceID NameOfPhysiciansReadingStudy NamesOfIntendedRecipientsOfResults Occupation
OperatorsName OperatorIdentificationSequence OriginalAttributesSequence OrderCallbackPhoneNumber
OrderEnteredBy OrderEntererLocation OtherPatientIDsSequence OtherPatientNames
PatientAddress PatientAge PatientBirthDate:Z PatientBirthName PatientBirthTime PatientComments
PatientInsurancePlanCodeSequence PatientMotherBirthName PatientPrimaryLanguageCodeSequence
PatientPrimaryLanguageModifierCodeSequence PatientReligiousPreference PatientSex:Z
PatientSexNeutered PatientSize PatientState PatientTelephoneNumbers PatientTransportArrangements
PatientWeight PerformedLocation PerformedProcedureStepDescription PerformedProcedureStepEndDate
PerformedProcedureStepEndTime PerformedProcedureStepID PerformedProcedureStepStartDate
PerformedProcedureStepStartTime PerformedStationAETitle
PerformedStationGeographicLocationCodeSequence PerformedStationName
PerformedStationNameCodeSequence PerformingPhysicianIdentificationSequence
PerformingPhysicianName PersonAddress PersonName:D PersonTelephoneNumbers
PhysicianApprovingInterpretation PhysiciansReadingStudyIdentificationSequence
PhysiciansOfRecord PhysiciansOfRecordIdentificationSequence
PlacerOrderNumberImagingServiceRequest:Z PlateID PreMedication PregnancyStatus ProtocolName
ReasonForTheImagingServiceRequest ReasonForStudy ReferencedDigitalSignatureSequence
ReferencedImageSequence ReferencedPatientAliasSequence ReferencedPatientSequence
ReferencedPerformedProcedureStepSequence ReferencedSOPInstanceMACSequence
ReferencedStudySequence ReferringPhysicianAddress ReferringPhysicianIdentificationSequence
ReferringPhysicianName:Z ReferringPhysicianTelephoneNumbers RegionOfResidence
RequestAttributesSequence RequestedContrastAgent RequestedProcedureComments
RequestedProcedureDescription RequestedProcedureID RequestedProcedureLocation
RequestingPhysician RequestingService RequestingServiceCodeSequence ResponsibleOrganization
ResponsiblePerson ResultsComments ResultsDistributionListSequence ResultsIDIssuer ReviewerName
ScheduledHumanPerformersSequence ScheduledPatientInstitutionResidence
ScheduledPerformingPhysicianIdentificationSequence ScheduledPerformingPhysicianName
ScheduledProcedureStepEndDate ScheduledProcedureStepEndTime ScheduledProcedureStepDescription
ScheduledProcedureStepLocation ScheduledProcedureStepStartDate ScheduledProcedureStepStartTime
ScheduledStationAETitle ScheduledStationGeographicLocationCodeSequence ScheduledStationName
ScheduledStationNameCodeSequence ScheduledStudyLocation ScheduledStudyLocationAETitle
SeriesDate SeriesDescription SeriesTime ServiceEpisodeDescription ServiceEpisodeID
SmokingStatus SourceImageSequence SpecialNeeds StationName StudyComments StudyDate:Z
StudyDescription StudyID:Z StudyIDIssuer StudyTime:Z TextComments TextString
TimezoneOffsetFromUTC TopicAuthor TopicKeywords TopicSubject TopicTitle
VerifyingObserverIdentificationCodeSequence:Z VerifyingObserverName:D
VerifyingObserverSequence VerifyingOrganization VisitComments OtherPatientIDs
"""


def _profile_table() -> dict[BaseTag, str]:
    table: dict[BaseTag, str] = {}
    for item in _REMOVE.split():
        keyword, _, action = item.partition(":")
        tag = tag_for_keyword(keyword)
        if tag is None:  # a keyword this pydicom does not know: nothing of that name to strip
            continue
        table[BaseTag(tag)] = action or "X"
    return table


PROFILE_ACTIONS = _profile_table()
_PATIENT_NAME = BaseTag(0x00100010)
_PATIENT_ID = BaseTag(0x00100020)
_FILE_META_REMOVE = (
    "SourceApplicationEntityTitle",
    "SendingApplicationEntityTitle",
    "ReceivingApplicationEntityTitle",
    "PrivateInformationCreatorUID",
    "PrivateInformation",
)


class _Deidentifier:
    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
            raise ValueError(f"the de-identification key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def _digest(self, purpose: str, value: str) -> bytes:
        return hmac.new(self._key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()

    def uid(self, value: str) -> str:
        value = str(value).strip()
        if not value or value.startswith(STANDARD_UID_ROOT):
            return value
        return "2.25." + str(int.from_bytes(self._digest("uid", value)[:16], "big"))

    def pseudonym(self, patient_id: str) -> str:
        return "ANON-" + self._digest("patient", str(patient_id).strip()).hex()[:16].upper()

    def clean(self, ds: Dataset, pseudonym: str) -> None:
        for element in list(ds):
            self._clean_element(ds, element, pseudonym)

    def _clean_element(self, ds: Dataset, element: DataElement, pseudonym: str) -> None:
        tag = element.tag
        if tag in (_PATIENT_NAME, _PATIENT_ID):
            element.value = pseudonym
            return
        if tag.is_private or _is_curve_or_overlay(tag) or element.VR == "UN":
            del ds[tag]
            return
        action = PROFILE_ACTIONS.get(tag)
        if action is not None:
            self._apply(ds, element, action)
        elif element.VR == "SQ":
            for item in element.value:
                self.clean(item, pseudonym)
        elif element.VR == "UI":
            element.value = self._remapped(element.value)
        elif element.VR == "PN":
            element.value = ""
        elif element.VR in ("LT", "ST", "UT"):
            del ds[tag]
        elif element.VR in ("DA", "DT", "TM"):
            element.value = ""

    def _apply(self, ds: Dataset, element: DataElement, action: str) -> None:
        if action == "X" or (action == "D" and element.VR == "SQ"):
            del ds[element.tag]
        elif action == "Z":
            element.value = DicomSequence([]) if element.VR == "SQ" else ""
        elif action == "D":
            element.value = DUMMY_NAME if element.VR == "PN" else "REMOVED"

    def _remapped(self, value: object) -> object:
        if isinstance(value, (list, tuple, MultiValue)):
            return [self.uid(item) for item in value]
        return self.uid(str(value)) if value else value

    def mark(self, ds: Dataset) -> None:
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = METHOD[:64]
        code = Dataset()
        code.CodeValue = "113100"
        code.CodingSchemeDesignator = "DCM"
        code.CodeMeaning = "Basic Application Confidentiality Profile"
        ds.DeidentificationMethodCodeSequence = DicomSequence([code])
        ds.LongitudinalTemporalInformationModified = "REMOVED"

    def clean_file_meta(self, ds: Dataset) -> None:
        meta = getattr(ds, "file_meta", None)
        if meta is None:
            return
        for keyword in _FILE_META_REMOVE:
            if keyword in meta:
                delattr(meta, keyword)
        if "MediaStorageSOPInstanceUID" in meta:
            meta.MediaStorageSOPInstanceUID = self.uid(meta.MediaStorageSOPInstanceUID)


def _is_curve_or_overlay(tag: BaseTag) -> bool:
    group = tag.group
    return 0x5000 <= group <= 0x50FF or (
        0x6000 <= group <= 0x60FF and tag.element in (0x3000, 0x4000, 0x1500)
    )


def deidentify_dataset(ds: Dataset, key: bytes) -> Dataset:
    """A de-identified copy of `ds` (the input is not modified). Same key, same mapping."""
    if str(getattr(ds, "BurnedInAnnotation", "")).upper() == "YES":
        raise ImagingError(
            "image has burned-in annotation (BurnedInAnnotation = YES); refusing to ingest"
        )
    worker = _Deidentifier(key)
    result = copy.deepcopy(ds)
    pseudonym = worker.pseudonym(
        str(getattr(ds, "PatientID", "") or getattr(ds, "PatientName", ""))
    )
    worker.clean(result, pseudonym)
    worker.clean_file_meta(result)
    worker.mark(result)
    if hasattr(result, "preamble"):
        result.preamble = b"\x00" * 128
    return result


def deidentify_series(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    key: bytes,
    *,
    overwrite: bool = False,
) -> list[Path]:
    """De-identify every DICOM file of a directory (or file list) into `out_dir`.

    Output names are neutral (`image_0001.dcm`, ...) because input names can carry PHI.
    The directory appears atomically, complete or not at all.
    """
    _Deidentifier(key)  # validate the key before reading anything
    paths = iter_dicom_paths([source] if isinstance(source, (str, os.PathLike)) else source)
    written: list[Path] = []
    with atomic_directory(out_dir, overwrite=overwrite) as temp_dir:
        for index, path in enumerate(paths, start=1):
            clean = deidentify_dataset(_read(path), key)
            name = f"image_{index:04d}.dcm"
            clean.save_as(temp_dir / name, enforce_file_format=True)
            written.append(Path(out_dir) / name)
    return written


def _read(path: Path) -> Dataset:
    try:
        return pydicom.dcmread(path)
    except Exception as exc:  # InvalidDicomError, EOFError, struct.error, ...
        raise CorruptFileError(f"{path.name}: not a readable DICOM file ({exc})") from exc
