"""The screening result of one mammography exam as a Mammography CAD SR (PS3.16 TID 4000).

Workstations draw CAD marks from this IOD (SOP class ...1.1.88.50), not from the
Comprehensive SR beside it (sr.py). Content tree, in template order:

    Mammography CAD Report (111036 DCM)                                      TID 4000
    ├ Language = English (United States)                                     TID 1204
    ├ Image Library: an IMAGE per view, its Image Laterality, Image View and
    │   Patient Orientation Row/Column                                       TID 4020
    ├ CAD Processing and Findings Summary = a CID 6047 value                  TID 4001
    │ ├ Impression Description: flagged for reading or not, suspicion, exam score and
    │ │   each view left out by image QC with its reason; Algorithm Name/Version TID 4002
    │ └ Individual Impression/Recommendation per marked view: Single Image Finding
    │     FINDING with Rendering Intent, Algorithm Name/Version (the model's), Probability
    │     of cancer (the view score, %) and Center, a SCOORD POINT at the heatmap peak in
    │     the source's pixels, R-SELECTED FROM its library IMAGE  TID 4003/4006/4019/4021
    ├ Summary of Detections: Successful / Failed Detections, one per view    TID 4015/4017
    └ Summary of Analyses: the Overall Impression/Recommendation Analysis    TID 4016/4018

A view left out of the exam score by image QC is a failed detection and gets no mark;
every other view is marked at its heatmap peak, "Presentation Required" when the exam is
flagged and the view scores at least the exam score (the views that carry the flag),
else "Presentation Optional". The classifier does not type what it finds and CID 6014
has no untyped lesion: a mark is the soft-tissue finding FINDING, drawn as a CAD density
(mass) mark. No TID 4001-4006 row holds an exam-level number: the exam score and the
suspicion are in the Impression Description text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.errors import InvalidStudy, PermanentError
from pipelines.screening.sr import copy_patient_study, header, scrub

if TYPE_CHECKING:
    import highdicom as hd
    from pydicom import Dataset

    from pipelines.imaging.crop import Box
    from pipelines.screening.writeback import ExamFinding, ViewFinding

MAMMOGRAPHY_CAD_SR = "1.2.840.10008.5.1.4.1.1.88.50"
FINDING = ("129793001", "Mammography breast density", "SCT")  # CID 6014
LATERALITY = {"R": ("73056007", "Right breast", "SCT"), "L": ("80248007", "Left breast", "SCT")}
VIEWS = {"CC": ("399162004", "cranio-caudal", "SCT"), "MLO": ("399368009", "medio-lateral oblique",
         "SCT"), "ML": ("399260004", "medio-lateral", "SCT"), "LM": ("399352003", "latero-medial", "SCT")}
LIBRARY = 2  # position of the Image Library among the root's items (after the language)
PROPERTY = "HAS PROPERTIES"


def region(view: ViewFinding) -> Box | None:
    """Where the model input lies in the source (top, bottom, left, right in its pixels):
    `view.input_box`, else found again from the source's pixels by the preprocessing the
    score came from (`preprocess.model_input_box`), else None (a header without pixels
    tells no crop)."""
    if view.input_box is not None:
        return view.input_box
    if "PixelData" not in view.source:
        return None
    from pipelines.imaging import preprocess

    try:
        display = preprocess.view_pixels(view.source, int(view.image.shape[0]))
    except InvalidStudy:
        return None
    return preprocess.model_input_box(display, view.source, view.view)


def _concept(value: str, meaning: str, scheme: str = "DCM") -> hd.sr.CodedConcept:
    import highdicom as hd

    return hd.sr.CodedConcept(value=value, scheme_designator=scheme, meaning=meaning)


def _node(item: Dataset, *children: Dataset) -> Dataset:
    """`item` as a plain content item holding `children` (highdicom's content sequences
    refuse the by-reference items that TID 4017, 4018 and 4021 need)."""
    from pydicom import Dataset as _Dataset

    out = _Dataset()
    for element in item:
        out.add(element)
    if children:
        out.ContentSequence = list(children)
    return out


def _code(relationship: str, name: tuple[str, str], value: tuple[str, ...],
          *children: Dataset) -> Dataset:
    import highdicom as hd

    return _node(hd.sr.CodeContentItem(name=_concept(*name), value=_concept(*value),
                                       relationship_type=relationship), *children)


def _text(relationship: str, name: tuple[str, str], value: str) -> Dataset:
    import highdicom as hd

    return _node(hd.sr.TextContentItem(name=_concept(*name), value=value,
                                       relationship_type=relationship))


def _container(relationship: str, name: tuple[str, str], *children: Dataset) -> Dataset:
    import highdicom as hd

    return _node(hd.sr.ContainerContentItem(name=_concept(*name), is_content_continuous=False,
                                            relationship_type=relationship), *children)


def _to_library(relationship: str, index: int) -> Dataset:
    """A by-reference item pointing at entry `index` (1-based) of the Image Library."""
    from pydicom import Dataset as _Dataset

    out = _Dataset()
    out.RelationshipType = relationship
    out.ReferencedContentItemIdentifier = [1, LIBRARY, index]
    return out


def _algorithm(finding: ExamFinding) -> list[Dataset]:
    """TID 4019: the model's name and version."""
    return [_text(PROPERTY, ("111001", "Algorithm Name"), finding.model_name[:1024]),
            _text(PROPERTY, ("111003", "Algorithm Version"), finding.model_version[:1024])]


def _view_code(view: ViewFinding) -> tuple[str, str, str]:
    """CID 4014 code of a view: by its name ("R-MLO"), else the source's View Code Sequence.

    Raises:
        PermanentError: neither names a view.
    """
    position = view.view.split("-")[-1].upper()
    if position in VIEWS:
        return VIEWS[position]
    for code in view.source.get("ViewCodeSequence") or []:
        return str(code.CodeValue), str(code.CodeMeaning), str(code.CodingSchemeDesignator)
    raise PermanentError(f"view {view.view}: no view code for the CAD SR image library")


def _library_entry(view: ViewFinding) -> Dataset:
    """TID 4020: the source image with its laterality, view and orientation.

    Raises:
        PermanentError: the view has no laterality (R or L) or no view code.
    """
    from pydicom import Dataset as _Dataset

    src = view.source
    side = str(src.get("ImageLaterality") or view.view[:1])
    if side not in LATERALITY:
        raise PermanentError(f"view {view.view}: laterality {side!r} is neither R nor L")
    view_code = _view_code(view)
    image = _Dataset()
    image.RelationshipType, image.ValueType = "CONTAINS", "IMAGE"
    image.ReferencedSOPSequence = [_sop_ref(src)]
    context = [_code("HAS ACQ CONTEXT", ("111027", "Image Laterality"), LATERALITY[side]),
               _code("HAS ACQ CONTEXT", ("111031", "Image View"), view_code)]
    orientation = src.get("PatientOrientation")
    if orientation is not None and not isinstance(orientation, str) and len(orientation) == 2:
        context += [_text("HAS ACQ CONTEXT", ("111044", "Patient Orientation Row"), str(orientation[0])),
                    _text("HAS ACQ CONTEXT", ("111043", "Patient Orientation Column"),
                          str(orientation[1]))]
    return _node(image, *context)


def _impression(finding: ExamFinding, index: int, box: Box) -> Dataset:
    """TID 4003 holding the TID 4006 single image finding of view `index` (1-based)."""
    import highdicom as hd
    import numpy as np

    from pipelines.imaging.preprocess import peak_location

    view = finding.views[index - 1]
    intent = (("111150", "Presentation Required: Rendering device is expected to present")
              if finding.flagged and view.score >= finding.exam_score
              else ("111151", "Presentation Optional: Rendering device may present"))  # CID 6034
    column, row = peak_location(view.heatmap, view.source, view.view, box)
    center = _node(hd.sr.ScoordContentItem(
        name=_concept("111010", "Center"), graphic_type=hd.sr.GraphicTypeValues.POINT,
        graphic_data=np.array([[round(column, 2), round(row, 2)]]), relationship_type=PROPERTY),
        _to_library("SELECTED FROM", index))
    probability = _node(hd.sr.NumContentItem(
        name=_concept("111047", "Probability of cancer"), value=round(100 * float(view.score), 2),
        unit=_concept("%", "Percent", "UCUM"), relationship_type=PROPERTY))
    single = _code("CONTAINS", ("111059", "Single Image Finding"), FINDING,
                   _code("HAS CONCEPT MOD", ("111056", "Rendering Intent"), intent),
                   *_algorithm(finding), probability, center)
    return _container("INFERRED FROM", ("111034", "Individual Impression/Recommendation"),
                      _code("HAS CONCEPT MOD", ("111056", "Rendering Intent"), intent), single)


def _summary(finding: ExamFinding, marks: list[Dataset], unplaced: list[str]) -> Dataset:
    """TID 4001 with its TID 4002 body and the marks' TID 4003 impressions (`unplaced`:
    the scored views whose crop is unknown, so they have no mark)."""
    text = (f"{'Flagged' if finding.flagged else 'Not flagged'} for reading by "
            f"{finding.model_name} v{finding.model_version}: suspicion {int(finding.suspicion)} "
            f"of 10, exam malignancy score {finding.exam_score:.2f}.")
    for view in finding.views:
        if view.discounted_reason:
            text += f" {view.view} left out of the exam score by image QC: {view.discounted_reason}."
    if unplaced:
        text += f" No mark on {', '.join(unplaced)}: where the model input lies in the image is unknown."
    failed = any(v.discounted_reason for v in finding.views)
    value = {(False, False): ("111241", "All algorithms succeeded; without findings"),  # CID 6047
             (False, True): ("111242", "All algorithms succeeded; with findings"),
             (True, False): ("111243", "Not all algorithms succeeded; without findings"),
             (True, True): ("111244", "Not all algorithms succeeded; with findings")}[
        (failed, bool(marks))]
    return _code("CONTAINS", ("111017", "CAD Processing and Findings Summary"), value,
                 _text(PROPERTY, ("111033", "Impression Description"), text),
                 *_algorithm(finding), *marks)


def _performed(finding: ExamFinding) -> list[Dataset]:
    """Summary of Detections (TID 4015/4017) and Summary of Analyses (TID 4016/4018)."""
    kept = [i for i, v in enumerate(finding.views, 1) if not v.discounted_reason]
    failed = [i for i, v in enumerate(finding.views, 1) if v.discounted_reason]

    def detection(index: int) -> Dataset:
        return _code("CONTAINS", ("111022", "Detection Performed"), FINDING,
                     *_algorithm(finding), _to_library(PROPERTY, index))

    groups = [_container("INFERRED FROM", name, *map(detection, views)) for name, views in
              ((("111063", "Successful Detections"), kept), (("111025", "Failed Detections"), failed))
              if views]
    status = ("111224", "Failed") if not kept else \
        ("111223", "Partially Succeeded") if failed else ("111222", "Succeeded")
    analysis = _code("CONTAINS", ("111004", "Analysis Performed"),
                     ("111234", "Overall Impression/Recommendation Analysis"), *_algorithm(finding),
                     *(_to_library(PROPERTY, i) for i in kept or failed))
    return [_code("CONTAINS", ("111064", "Summary of Detections"), status, *groups),
            _code("CONTAINS", ("111065", "Summary of Analyses"), ("111222", "Succeeded"),
                  _container("INFERRED FROM", ("111062", "Successful Analyses"), analysis))]


def content(finding: ExamFinding) -> Dataset:
    """The TID 4000 content tree of one exam finding (see the module docstring)."""
    import highdicom as hd

    marks, unplaced = [], []
    for index, view in enumerate(finding.views, 1):
        box = None if view.discounted_reason else region(view)
        if box is not None:
            marks.append(_impression(finding, index, box))
        elif not view.discounted_reason:
            unplaced.append(view.view)
    root = hd.sr.ContainerContentItem(name=_concept("111036", "Mammography CAD Report"),
                                      is_content_continuous=False, template_id="4000")
    language = hd.sr.LanguageOfContentItemAndDescendants(hd.sr.templates.DEFAULT_LANGUAGE)[0]
    library = _container("CONTAINS", ("111028", "Image Library"), *map(_library_entry, finding.views))
    return _node(root, _node(language), library, _summary(finding, marks, unplaced),
                 *_performed(finding))


def _sop_ref(src: Dataset) -> Dataset:
    from pydicom import Dataset as _Dataset

    ref = _Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = src.SOPClassUID, src.SOPInstanceUID
    return ref


def _evidence(sources: list[Dataset]) -> list[Dataset]:
    """Current Requested Procedure Evidence: the views by series (all of one study)."""
    from pydicom import Dataset as _Dataset

    study = _Dataset()
    study.StudyInstanceUID, study.ReferencedSeriesSequence = sources[0].StudyInstanceUID, []
    for uid in dict.fromkeys(str(src.SeriesInstanceUID) for src in sources):
        series = _Dataset()
        series.SeriesInstanceUID = uid
        series.ReferencedSOPSequence = [_sop_ref(s) for s in sources if s.SeriesInstanceUID == uid]
        study.ReferencedSeriesSequence.append(series)
    return [study]


def build_cad_sr(finding: ExamFinding, *, series_uid: str, sop_uid: str,
                 series_description: str, series_number: int = 9003) -> Dataset:
    """The Mammography CAD SR of one exam finding, in the source study.

    Args:
        finding: the exam finding (checked by the caller; its views are MG images).
        series_uid: SeriesInstanceUID of the new CAD SR series.
        sop_uid: SOPInstanceUID of the CAD SR.
        series_description: names the task and model version (see writeback).
        series_number: the CAD SR series number.

    Returns:
        A pydicom Dataset with file meta (Explicit VR Little Endian), ready to save.

    Raises:
        PermanentError: a view has no laterality or view code, or highdicom refuses a
            content item; the message names the view or the model version, never an identifier.
    """
    import datetime as dt

    from pydicom import Dataset as _Dataset
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian

    sources = [header(v.source) for v in finding.views]
    try:
        root = content(finding)
    except (ValueError, TypeError, AttributeError) as exc:
        raise PermanentError(f"CAD SR for model version {finding.model_version} could not be "
                             f"built: {scrub(str(exc), finding.views[0].source)}") from None
    ds = _Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(MAMMOGRAPHY_CAD_SR)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if "SpecificCharacterSet" in sources[0]:
        ds.SpecificCharacterSet = sources[0].SpecificCharacterSet
    ds.SOPClassUID, ds.SOPInstanceUID = MAMMOGRAPHY_CAD_SR, sop_uid
    copy_patient_study(ds, sources[0])
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = "SR", series_uid, series_number
    ds.SeriesDescription, ds.ReferencedPerformedProcedureStepSequence = series_description, []
    ds.Manufacturer, ds.ManufacturerModelName = "radflow", finding.model_name[:64]
    ds.SoftwareVersions = str(finding.model_version)[:64]
    now = dt.datetime.now()
    ds.InstanceNumber, ds.ContentDate, ds.ContentTime = 1, f"{now:%Y%m%d}", f"{now:%H%M%S}"
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    ds.PreliminaryFlag = "PRELIMINARY"  # a machine's reading: the radiologist reports
    ds.PerformedProcedureCodeSequence = []
    ds.CurrentRequestedProcedureEvidenceSequence = _evidence(sources)
    for element in root:
        ds.add(element)
    return ds
