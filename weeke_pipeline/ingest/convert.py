"""One de-identified series -> dcm2niix (through nipype) -> BIDS raw names and clean sidecars;
the ADC fit for sessions without a scanner ADC. The run around it: :mod:`.run`.

Layout (``out_dir``, names from :mod:`weeke_pipeline.bids.names`)::

    dataset_description.json
    deidentification.json                      the method (profile, table, private tags kept)
    sub-<pseudonym>/sub-<pseudonym>_sessions.tsv       session_id, age_days
    sub-<pseudonym>/ses-<label>/sub-..._ses-..._scans.tsv  filename, classification
    sub-<pseudonym>/ses-<label>/anat/sub-<p>_ses-<s>[_run-<n>]_T1w.nii.gz (+ .json)
                                     .../..._T2w.nii.gz, ..._acq-swi_T2starw.nii.gz
    sub-<pseudonym>/ses-<label>/dwi/sub-<p>_ses-<s>[_run-<n>]_dwi.nii.gz + .bval .bvec .json
                                    .../..._desc-scanner_ADC.nii.gz   scanner-computed ADC
                                    .../..._desc-logfit_ADC.nii.gz  fitted here (no scanner ADC)

Both ADC maps are in 10^-6 mm^2/s (sidecar ``Units``). A failing series becomes a failed
result (its error names the source and the problem; the caller scrubs identifying values).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from weeke_pipeline import atomic
from weeke_pipeline.bids import names
from weeke_pipeline.ingest import deidentify as deid

log = logging.getLogger(__name__)

CONVERTED = ("t1w", "t2w", "dwi", "adc", "swi")
#: classification -> the BIDS datatype folder, suffix and any fixed entities of its files
BIDS_NAMES: dict[str, dict[str, str]] = {
    "t1w": {"datatype": "anat", "suffix": "T1w"},
    "t2w": {"datatype": "anat", "suffix": "T2w"},
    "swi": {"datatype": "anat", "acq": "swi", "suffix": "T2starw"},
    "dwi": {"datatype": "dwi", "suffix": "dwi"},
    "adc": {"datatype": "dwi", "desc": "scanner", "suffix": "ADC"},
}
ADC_UNITS = "10^-6 mm^2/s"
#: sidecar keys never written, whatever dcm2niix puts there
_SIDECAR_DENY = {
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientWeight", "PatientSize",
    "AccessionNumber", "InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName",
    "DeviceSerialNumber", "StationName", "StudyID", "StudyDescription", "SeriesDescription",
    "ProtocolName", "ProcedureStepDescription", "ImageComments", "ReferringPhysicianName",
    "AcquisitionDateTime", "AcquisitionDate", "AcquisitionTime", "StudyInstanceUID",
    "SeriesInstanceUID", "BidsGuess", "PatientAge", "ContentTime", "StudyTime", "SeriesTime",
}


@dataclass
class SeriesResult:
    """What happened to one source series (no identifying values)."""

    source: str
    classification: str
    status: str  # converted | skipped | failed
    message: str = ""
    participant: str = ""
    session: str = ""
    outputs: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers
def ensure_dcm2niix_on_path() -> str:
    """Put the folder of the PyPI dcm2niix binary on PATH (nipype finds it only there)."""
    exe = shutil.which("dcm2niix")
    if exe:
        return exe
    import dcm2niix

    folder = str(Path(dcm2niix.bin).parent)
    os.environ["PATH"] = folder + os.pathsep + os.environ.get("PATH", "")
    return dcm2niix.bin


def run_dcm2niix(source_dir: Path, out_dir: Path) -> list[Path]:
    """Convert one de-identified series folder with nipype's Dcm2niix; return the NIfTI files."""
    ensure_dcm2niix_on_path()
    from nipype.interfaces.dcm2nii import Dcm2niix

    out_dir.mkdir(parents=True, exist_ok=True)
    conv = Dcm2niix(source_dir=str(source_dir), output_dir=str(out_dir), out_filename="conv",
                    compress="y", bids_format=True, anon_bids=True)
    conv.terminal_output = "allatonce"  # dcm2niix's chatter kept with the result, not logged
    try:
        runtime = conv.run(cwd=str(out_dir)).runtime
        printed = f"{runtime.stdout or ''}\n{runtime.stderr or ''}"
    except Exception as exc:  # nipype raises on a non-zero exit; its text holds the output
        printed = str(exc)
    niis = sorted(out_dir.glob("conv*.nii.gz"))
    if not niis:
        raise RuntimeError(dcm2niix_failure(printed))
    return niis


_DCM2NIIX_PROBLEM = re.compile(r"error|unable|unsupport|corrupt|fail|decod|invalid|missing|"
                               r"not (?:supported|a dicom)|skipping", re.IGNORECASE)


def dcm2niix_failure(printed: str) -> str:
    """A one-line reason from dcm2niix's output when it wrote no image (its error lines, with
    timestamps and work-folder paths removed), instead of a bare "wrote no image"."""
    lines: list[str] = []
    for line in printed.splitlines():
        line = re.sub(r"^\s*(?:stdout|stderr)?\s*\d{4}-\d\d-\d\dT[\d:.]+:", "", line).strip()
        line = re.sub(r"'?/[^\s']*/([^/\s']+)'?", r"\1", line)  # paths -> file names
        if line and _DCM2NIIX_PROBLEM.search(line) and line not in lines:
            lines.append(line)
    lines.sort(key=lambda line: "error" not in line.lower())  # its errors first
    if not lines:
        return ("dcm2niix wrote no image and printed no reason (the pixel data may be "
                "undecodable)")
    more = f" (and {len(lines) - 2} more message(s))" if len(lines) > 2 else ""
    return "dcm2niix wrote no image: " + "; ".join(lines[:2])[:300] + more


def clean_sidecar(path: Path, extra: dict[str, object]) -> None:
    data = json.loads(path.read_text()) if path.exists() else {}
    data = {k: v for k, v in data.items() if k not in _SIDECAR_DENY}
    name = data.get("SequenceName")
    if name is not None and not (isinstance(name, str) and deid.SEQUENCE_NAME.fullmatch(name)):
        del data["SequenceName"]  # free text where a sequence name should be
    data.update(extra)
    atomic.write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _move_set(nii: Path, dest_stem: Path) -> list[Path]:
    """Move conv*.nii.gz and its .json/.bval/.bvec siblings to ``dest_stem`` + extension
    (the image last, so a ``*.nii.gz`` in the raw data always has its sidecars)."""
    dest_stem.parent.mkdir(parents=True, exist_ok=True)
    stem = nii.name[: -len(".nii.gz")]
    moved = []
    for ext in (".json", ".bval", ".bvec", ".nii.gz"):
        src = nii.with_name(stem + ext)
        if src.exists():
            dst = dest_stem.with_name(dest_stem.name + ext)
            atomic.move_file(src, dst)
            moved.append(dst)
    return moved


@dataclass
class ConvertJob:
    """One series to de-identify and convert (no identifying value: ``src`` is scrubbed)."""

    sources: list  # discover.Source items, in instance order
    src: str
    sid: str  # keyed hash of the Series Instance UID: the work folder name
    classification: str
    evidence: str
    participant: str
    session: str
    run: str  # the run entity ("2"), "" when the session has one series of this kind
    age_days: int | None
    volumes: int | None = None  # volumes the headers describe (classic series), for DWIs
    embedded_adc_acq: str = ""  # acq entity of an ADC dcm2niix splits off a DWI ("dwi" when
    # the session has an ADC series of its own, so the two never overwrite each other)


def convert_deidentified(job: ConvertJob, out_dir: Path, work_dir: Path
                          ) -> tuple[SeriesResult, list[tuple[int, str]]]:
    """dcm2niix on one de-identified series, then BIDS names and cleaned sidecars.

    Returns the result and the log lines for the caller to emit (unscrubbed: the caller
    scrubs). Errors other than a full disk become a failed result."""
    src, p, ses = job.src, job.participant, job.session
    res = SeriesResult(src, job.classification, "failed", participant=p, session=ses)
    notes: list[tuple[int, str]] = []
    try:
        niis = run_dcm2niix(work_dir / "deid" / job.sid, work_dir / "dcm2niix" / job.sid)
        entities = {"sub": p, "ses": ses, **({"run": job.run} if job.run else {})}
        kind = {**entities, **BIDS_NAMES[job.classification]}
        extra = {"DeidentificationMethod": deid.DEIDENTIFICATION_METHOD,
                 "WeekeClassification": job.classification,
                 "WeekeClassificationEvidence": job.evidence}
        main = niis[0]
        written: dict[str, int] = {}
        for nii in niis:
            tag = nii.name[len("conv"): -len(".nii.gz")].strip("_")
            n_vol = _volumes(nii)
            written[tag or "dwi"] = n_vol
            if tag == "ADC" and job.classification == "dwi" and not _is_scanner_adc(nii):
                # dcm2niix tags every "derived" volume it splits off a DWI (b > 0 without a
                # direction) "ADC": with directions lost in the export that is raw signal,
                # never labelled as an ADC map
                for ext in (".nii.gz", ".json", ".bval", ".bvec"):
                    nii.with_name(nii.name[: -len(".nii.gz")] + ext).unlink(missing_ok=True)
                notes.append((logging.WARNING, f"{src}: dcm2niix split off a {n_vol}-volume "
                               "image tagged ADC (raw diffusion signal, not an ADC map); not "
                               "kept"))
                continue
            if tag == "ADC" and job.classification == "dwi":  # Philips: ADC inside the DWI
                cls, ent = "adc", {**entities, **BIDS_NAMES["adc"]}
                if job.embedded_adc_acq:
                    ent["acq"] = job.embedded_adc_acq
            elif nii is main:
                cls, ent = job.classification, kind
            else:  # more images of the series (e.g. echoes): acq-<dcm2niix's tag>
                acq = "".join(ch for ch in tag if ch.isalnum())
                cls, ent = job.classification, {**kind, "acq": acq}
            stem = out_dir / names.build(ent)  # no extension: _move_set adds them
            meta = dict(extra, WeekeClassification=cls)
            if cls == "adc":
                meta["Units"] = ADC_UNITS
            clean_sidecar(nii.with_name(nii.name[: -len(".nii.gz")] + ".json"), meta)
            moved = _move_set(nii, stem)
            res.outputs.extend(str(m.relative_to(out_dir)) for m in moved)
        res.status = "converted"
        dwi_volumes = written.get(niis[0].name[len("conv"): -len(".nii.gz")].strip("_") or "dwi")
        if job.classification == "dwi" and job.volumes and dwi_volumes != job.volumes:
            split = ", ".join(f"{k} ({v})" for k, v in written.items() if k != "dwi")
            res.message = (f"{src}: the DWI headers describe {job.volumes} volume(s) per slice "
                           f"position; dcm2niix wrote {dwi_volumes} into the DWI"
                           + (f" and split off {split}" if split else ""))
            notes.append((logging.WARNING, res.message))
        if job.classification == "dwi" and _no_directions(out_dir, res.outputs):
            res.message = (f"{src}: DWI with b-values but no gradient directions (isotropic or "
                           "trace, or lost in the export): ADC only, the tensor fit is skipped")
            notes.append((logging.WARNING, res.message))
        if job.classification == "dwi" and not _has_bvalues(out_dir, res.outputs):
            # kept in the raw data for reading, but no ADC fit and no tensor fit: dcm2niix
            # writes all-zero b-values when the headers have none, so those files go
            for o in [o for o in res.outputs if o.endswith((".bval", ".bvec"))]:
                (out_dir / o).unlink()
                res.outputs.remove(o)
            res.message = (f"{src}: DWI without b-values (no diffusion b-value in the headers);"
                           " converted but not used for ADC or DTI")
            notes.append((logging.WARNING, res.message))
        notes.append((logging.INFO, f"{src}: {job.classification} -> {res.outputs[0]}"))
    except atomic.DiskFullError:
        raise  # nothing more can be written: the run stops with this error
    except Exception as exc:  # one series must not stop the others
        if atomic.is_disk_full(exc):
            raise atomic.write_error(exc, getattr(exc, "filename", None) or work_dir) from exc
        what = str(exc) if isinstance(exc, RuntimeError) else f"{type(exc).__name__}: {exc}"
        res.message = f"{src}: {what}"
        notes.append((logging.ERROR, res.message))
    return res, notes


def _is_scanner_adc(nii: Path) -> bool:
    """An image dcm2niix split off a DWI is a scanner ADC map only when it is one volume and
    its Image Type names ADC (Philips stores the ADC inside the DWI series); else it is
    direction-less diffusion signal (trace-weighted, or directions lost in the export)."""
    sidecar = nii.with_name(nii.name[: -len(".nii.gz")] + ".json")
    try:
        image_type = json.loads(sidecar.read_text()).get("ImageType") or []
    except (OSError, ValueError):
        image_type = []
    return _volumes(nii) == 1 and any("ADC" in str(t).upper() for t in image_type)


def _volumes(nii: Path) -> int:
    """Volumes of a NIfTI (1 for a 3D image), from its header only."""
    import nibabel as nib

    shape = nib.load(nii).shape
    return int(shape[3]) if len(shape) > 3 else 1


def _no_directions(out_dir: Path, outputs: list[str]) -> bool:
    """True when a DWI has diffusion-weighted volumes (b > 50) and none has a direction."""
    import numpy as np

    bval = next((o for o in outputs if o.endswith(".bval")), None)
    bvec = next((o for o in outputs if o.endswith(".bvec")), None)
    if bval is None or bvec is None:
        return False
    try:
        b = np.loadtxt(out_dir / bval, ndmin=1)
        g = np.loadtxt(out_dir / bvec, ndmin=2)
        dw = b > 50.0
        return bool(dw.any()) and bool(np.all(np.linalg.norm(g[:, dw], axis=0) < 0.5))
    except (OSError, ValueError, IndexError):
        return False


def _has_bvalues(out_dir: Path, outputs: list[str]) -> bool:
    """True when a DWI's .bval file exists and has a diffusion-weighted volume (b > 50)."""
    for o in outputs:
        if o.endswith(".bval"):
            try:
                values = [float(v) for v in (out_dir / o).read_text().split()]
            except (OSError, ValueError):
                return False
            return any(v > 50.0 for v in values)
    return False


def add_computed_adc(out_dir: Path, results: list[SeriesResult]) -> list[SeriesResult]:
    """Fit an ADC map for every converted DWI of a session that has no scanner ADC."""
    import nibabel as nib
    import numpy as np

    from weeke_pipeline.ingest.adc import fit_adc

    def is_(o: str, suffix: str) -> bool:
        e = names.parse(o)
        return e.get("suffix") == suffix and e["extension"] == ".nii.gz"

    have_adc = {(r.participant, r.session) for r in results if r.status == "converted"
                and any(is_(o, "ADC") for o in r.outputs)}
    new = []
    for r in results:
        if r.status != "converted" or r.classification != "dwi":
            continue
        if (r.participant, r.session) in have_adc:
            continue
        for o in r.outputs:
            if not is_(o, "dwi") or o.replace(".nii.gz", ".bval") not in r.outputs:
                continue  # a DWI without b-values (warned about at conversion)
            dwi_path = out_dir / o
            out = SeriesResult(r.source, "adc", "failed", participant=r.participant,
                               session=r.session)
            try:
                img = nib.load(dwi_path)
                bvals = np.loadtxt(str(dwi_path).replace(".nii.gz", ".bval"), ndmin=1)
                adc = fit_adc(np.asarray(img.dataobj, dtype=np.float32), bvals)
                stem = names.build({**names.parse(o), "desc": "logfit", "suffix": "ADC",
                                    "extension": ""})
                hdr = img.header.copy()
                hdr.set_data_dtype(np.float32)
                hdr.set_slope_inter(1, 0)
                atomic.write_text(out_dir / f"{stem}.json", json.dumps({
                    "Units": ADC_UNITS, "Sources": [o], "WeekeClassification": "adc",
                    "Description": "log-linear least-squares ADC over b-value shells (trace), "
                                   "Otsu mask on b=0 (weeke_pipeline.ingest.adc.fit_adc)",
                    "DeidentificationMethod": deid.DEIDENTIFICATION_METHOD,
                }, indent=2, sort_keys=True) + "\n")
                adc_img = nib.Nifti1Image(adc, img.affine, hdr)
                atomic.write_with(out_dir / f"{stem}.nii.gz",
                                  lambda tmp, im=adc_img: nib.save(im, tmp))
                out.status, out.outputs = "converted", [f"{stem}.nii.gz", f"{stem}.json"]
            except atomic.DiskFullError:
                raise
            except Exception as exc:
                out.message = f"{r.source}: ADC not computed: {type(exc).__name__}: {exc}"
                out.status = "skipped"
                log.warning("%s", out.message)
            new.append(out)
    return new


