"""Country and market names: every code a profile may give is shown by name, not as a code."""

from c2f_reporting.brochure import COUNTRIES
from c2f_shared.vocabulary import COUNTRY_NAMES


def test_every_iso_country_has_a_name_and_the_partnerships_wording_stays() -> None:
    assert COUNTRY_NAMES["CY"] == "Cyprus"  # was shown as "CY" on the dashboard
    assert COUNTRY_NAMES["XK"] == "Kosovo" and COUNTRY_NAMES["US-CA"] == "California"
    assert COUNTRY_NAMES["MK"] == "North Macedonia" and COUNTRY_NAMES["US"] == "United States"
    assert len([c for c in COUNTRY_NAMES if len(c) == 2]) >= 249
    assert all(name and name != code for code, name in COUNTRY_NAMES.items())
    assert COUNTRIES["CY"] == "Cyprus", "reporting's brochure and dashboard use the same names"
