"""Synthetic patients: PHI-looking identities that de-identification must remove.

A patient is a pure function of (seed, site, patient index), so exams of the same seed
and site on different study dates reuse the same women (prior exams). The birth date is
fixed per patient and chosen so that her age is 40-75 on any study date.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from pipelines.synth.seeding import rng_for

FAMILY_NAMES: tuple[str, ...] = tuple(
    "ANDERSEN BAKER CASTILLO DUBOIS ERIKSSON FISCHER GARCIA HOFFMANN IVANOVA JANSEN KOWALSKI "
    "LAMBERT MORENO NAKAMURA OKAFOR PETERSEN QUINN ROSSI SCHMIDT TANAKA USMAN VARGA WAGNER "
    "YILMAZ ZIMMERMANN".split()
)
GIVEN_NAMES: tuple[str, ...] = tuple(
    "ANNA BEATRICE CLARA DIANA ELENA FATIMA GRETA HANNA INGRID JULIA KAREN LAURA MARIA NADIA "
    "OLIVIA PAULA ROSA SOFIA TERESA URSULA VERA WANDA YUKI ZOE".split()
)
PHYSICIANS: tuple[str, ...] = tuple(
    "HOUSE^GREGORY GREY^MEREDITH QUINCY^MICHAEL KILDARE^JAMES ROSS^DOUG WELBY^MARCUS "
    "CHRISTIAN^ELLEN".split()
)
TECHNOLOGISTS: tuple[str, ...] = tuple(
    "MILLER^SARAH NOVAK^PETRA OLSEN^KIRSTEN BRANDT^MONIKA SILVA^ANA".split()
)
RADIOLOGISTS: tuple[str, ...] = tuple(
    "LAENNEC^RENE ROENTGEN^BERTHA CURIE^IRENE SALOMON^ALBERT EGAN^ROBERT".split()
)

_MIN_AGE = 40
_AGE_SPAN = 35  # completed years 40..74 on the birthday, up to 75 just before the next one


@dataclasses.dataclass(frozen=True)
class Patient:
    """One synthetic woman. Every field except the index looks like PHI on purpose.

    Attributes:
        index: position in the site's patient pool (not PHI; never written to DICOM).
        name: DICOM person name "FAMILY^GIVEN^M".
        mrn: medical record number ("MRN" + 7 digits).
        birth_month: 1-12.
        birth_day: 1-28.
        year_offset: fixes the birth year (see `birth_date`).
        density: ACR breast density category "a".."d".
        size: relative breast size (about 0.85-1.1).
    """

    index: int
    name: str
    mrn: str
    birth_month: int
    birth_day: int
    year_offset: int
    density: str
    size: float

    def birth_date(self, study_date: dt.date) -> dt.date:
        """Her birth date, the same on every study date except once every 35 years.

        The birth year is `year - 41 - (year + offset) % 35`: consecutive study years give
        the same birth year, and the age at the study is always 40-75.
        """
        year = study_date.year
        birth_year = year - (_MIN_AGE + 1) - (year + self.year_offset) % _AGE_SPAN
        return dt.date(birth_year, self.birth_month, self.birth_day)

    def age_at(self, study_date: dt.date) -> int:
        """Completed years of age on the study date."""
        born = self.birth_date(study_date)
        before_birthday = (study_date.month, study_date.day) < (born.month, born.day)
        return study_date.year - born.year - int(before_birthday)


def patient_for(seed: int, site: str, index: int) -> Patient:
    """The deterministic patient `index` of the pool of (seed, site).

    Args:
        seed: the synth run's seed.
        site: the site name.
        index: position in the patient pool.

    Returns:
        The same Patient for the same arguments on every run and study date.
    """
    rng = rng_for("patient", seed, site, index)
    family = FAMILY_NAMES[int(rng.integers(len(FAMILY_NAMES)))]
    given = GIVEN_NAMES[int(rng.integers(len(GIVEN_NAMES)))]
    initial = chr(ord("A") + int(rng.integers(26)))
    density = str(rng.choice(["a", "b", "c", "d"], p=[0.1, 0.4, 0.4, 0.1]))
    return Patient(
        index=index,
        name=f"{family}^{given}^{initial}",
        mrn=f"MRN{int(rng.integers(1_000_000, 10_000_000)):07d}",
        birth_month=int(rng.integers(1, 13)),
        birth_day=int(rng.integers(1, 29)),
        year_offset=int(rng.integers(_AGE_SPAN)),
        density=density,
        size=float(rng.uniform(0.85, 1.1)),
    )
