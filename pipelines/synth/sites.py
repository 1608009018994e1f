"""Vendor profiles of the synthetic sites: detector, bit depth, photometry and image look.

Sites differ in everything a model can notice (matrix, pixel size, intensity curve, noise,
texture scale, MONOCHROME1 versus MONOCHROME2) and in the population they screen (the size
of the cancers found), so fine-tuning on one site and drift between sites are real effects.
For monitoring drills a site can also be given another vendor's unit (`profile_by_key`) or
an ageing detector (`degraded`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math

from pipelines.errors import PermanentError

# An ageing detector at degradation D: noise x (1 + 2 D), contrast x (1 - 0.25 D) and a
# smooth gain field whose peak-to-peak amplitude is 0.12 D.
_NOISE_GROWTH, _CONTRAST_LOSS, _GAIN_AMPLITUDE = 2.0, 0.25, 0.12


@dataclasses.dataclass(frozen=True)
class VendorProfile:
    """One mammography unit model and how its images look.

    Attributes:
        key: short name of the profile ("hologic", ...).
        manufacturer: DICOM Manufacturer.
        model: DICOM ManufacturerModelName.
        software: DICOM SoftwareVersions.
        detector_rows: full detector matrix height in pixels.
        detector_cols: full detector matrix width in pixels.
        spacing_mm: full-resolution detector pixel pitch.
        bits_stored: 12 or 14.
        photometric: "MONOCHROME2" or "MONOCHROME1" (high stored values are dark).
        voi_function: VOILUTFunction ("LINEAR" or "SIGMOID").
        anode: AnodeTargetMaterial.
        filters: FilterMaterial values the unit chooses from.
        kvp_range: tube voltage range in kV.
        detector_type: DetectorType ("DIRECT" or "SCINTILLATOR").
        gamma: exponent of the intensity curve from attenuation to stored value.
        air_level: stored background (air) level as a fraction of full scale.
        signal_span: fraction of full scale the densest tissue reaches.
        noise: standard deviation of the pixel noise as a fraction of full scale.
        texture_scale: multiplier of the fibroglandular texture size in millimetres.
        detector_degradation: 0 for a healthy detector up to 1 for a badly aged one; the
            noise and signal_span above already include it (see `degraded`).
    """

    key: str
    manufacturer: str
    model: str
    software: str
    detector_rows: int
    detector_cols: int
    spacing_mm: float
    bits_stored: int
    photometric: str
    voi_function: str
    anode: str
    filters: tuple[str, ...]
    kvp_range: tuple[int, int]
    detector_type: str
    gamma: float
    air_level: float
    signal_span: float
    noise: float
    texture_scale: float
    detector_degradation: float = 0.0

    @property
    def max_value(self) -> int:
        """The largest stored pixel value."""
        return int(2**self.bits_stored - 1)

    @property
    def gain_nonuniformity(self) -> float:
        """Peak-to-peak amplitude of the detector's multiplicative gain field (0: flat)."""
        return _GAIN_AMPLITUDE * self.detector_degradation


@dataclasses.dataclass(frozen=True)
class Geometry:
    """The image matrix at a given scale; spacing grows as the matrix shrinks."""

    rows: int
    cols: int
    spacing_mm: float


PROFILES: dict[str, VendorProfile] = {
    "hologic": VendorProfile(
        key="hologic",
        manufacturer="HOLOGIC, Inc.",
        model="Selenia Dimensions",
        software="1.10.3.5",
        detector_rows=4096,
        detector_cols=3328,
        spacing_mm=0.065,
        bits_stored=14,
        photometric="MONOCHROME2",
        voi_function="LINEAR",
        anode="TUNGSTEN",
        filters=("RHODIUM", "SILVER"),
        kvp_range=(26, 34),
        detector_type="DIRECT",
        gamma=0.85,
        air_level=0.012,
        signal_span=0.72,
        noise=0.008,
        texture_scale=1.0,
    ),
    "ge": VendorProfile(
        key="ge",
        manufacturer="GE MEDICAL SYSTEMS",
        model="Senographe Pristina",
        software="ADS_61.11",
        detector_rows=2850,
        detector_cols=2394,
        spacing_mm=0.1,
        bits_stored=14,
        photometric="MONOCHROME1",
        voi_function="SIGMOID",
        anode="MOLYBDENUM",
        filters=("MOLYBDENUM", "RHODIUM"),
        kvp_range=(26, 34),
        detector_type="SCINTILLATOR",
        gamma=1.25,
        air_level=0.03,
        signal_span=0.6,
        noise=0.014,
        texture_scale=1.35,
    ),
    "siemens": VendorProfile(
        key="siemens",
        manufacturer="SIEMENS",
        model="MAMMOMAT Revelation",
        software="VB10A",
        detector_rows=3328,
        detector_cols=2560,
        spacing_mm=0.085,
        bits_stored=12,
        photometric="MONOCHROME2",
        voi_function="LINEAR",
        anode="TUNGSTEN",
        filters=("RHODIUM",),
        kvp_range=(27, 35),
        detector_type="DIRECT",
        gamma=1.0,
        air_level=0.02,
        signal_span=0.8,
        noise=0.02,
        texture_scale=0.8,
    ),
    "fujifilm": VendorProfile(
        key="fujifilm",
        manufacturer="FUJIFILM Corporation",
        model="AMULET Innovality",
        software="FDR-MS 7.0",
        detector_rows=4728,
        detector_cols=3540,
        spacing_mm=0.05,
        bits_stored=12,
        photometric="MONOCHROME2",
        voi_function="LINEAR",
        anode="TUNGSTEN",
        filters=("RHODIUM", "ALUMINUM"),
        kvp_range=(25, 33),
        detector_type="DIRECT",
        gamma=0.7,
        air_level=0.006,
        signal_span=0.9,
        noise=0.012,
        texture_scale=1.15,
    ),
}

SITE_PROFILES: dict[str, str] = {
    "general": "hologic",
    "north": "ge",
    "east": "siemens",
    "south": "fujifilm",
}


# Sites screen different populations too: north's programme finds its cancers earlier, so
# its masses are smaller (radius as a fraction of the image width; others: the default).
DEFAULT_MASS_RADIUS = (0.04, 0.075)
SITE_MASS_RADIUS: dict[str, tuple[float, float]] = {"north": (0.022, 0.042)}


def mass_radius_for_site(site: str) -> tuple[float, float]:
    """The range of suspicious-mass radii at a site (a fraction of the image width)."""
    return SITE_MASS_RADIUS.get(site.lower(), DEFAULT_MASS_RADIUS)


def profile_for_site(site: str) -> VendorProfile:
    """The vendor profile a site uses.

    Known sites ("general", "north", "east", "south") have fixed profiles; any other
    name picks one from a SHA-256 of the name, so the choice is stable everywhere.
    """
    key = SITE_PROFILES.get(site.lower())
    if key is None:
        keys = sorted(PROFILES)
        digest = hashlib.sha256(site.lower().encode()).digest()
        key = keys[int.from_bytes(digest[:4], "big") % len(keys)]
    return PROFILES[key]


def profile_by_key(key: str) -> VendorProfile:
    """The vendor profile named `key` ("hologic", "ge", "siemens", "fujifilm").

    Raises:
        PermanentError: no profile has that key; the message lists the known ones.
    """
    profile = PROFILES.get(key.lower())
    if profile is None:
        raise PermanentError(f"unknown vendor {key!r}; known vendors: {', '.join(sorted(PROFILES))}")
    return profile


def degraded(profile: VendorProfile, degradation: float) -> VendorProfile:
    """The same unit with an ageing detector; 0 returns `profile` itself.

    Headers stay those of the unit (manufacturer, model, software, kVp range); only the
    image changes: more noise, less contrast and a gain non-uniformity that the renderer
    draws from `gain_nonuniformity`.

    Raises:
        PermanentError: degradation is not in [0, 1].
    """
    if not 0.0 <= degradation <= 1.0:
        raise PermanentError(f"detector degradation must be in [0, 1], got {degradation}")
    if degradation == 0.0:
        return profile
    return dataclasses.replace(
        profile,
        noise=profile.noise * (1.0 + _NOISE_GROWTH * degradation),
        signal_span=profile.signal_span * (1.0 - _CONTRAST_LOSS * degradation),
        detector_degradation=degradation,
    )


def geometry_for(profile: VendorProfile, scale: float) -> Geometry:
    """The matrix and pixel spacing of a profile's images at `scale` of the detector size.

    Raises:
        ValueError: scale is not in (0, 1].
    """
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    rows = max(32, int(math.floor(profile.detector_rows * scale + 0.5)))
    cols = max(24, int(math.floor(profile.detector_cols * scale + 0.5)))
    return Geometry(rows=rows, cols=cols, spacing_mm=profile.spacing_mm / scale)
