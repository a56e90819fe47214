"""The first matching rule: offers fit needs by category or shared words."""

from c2f_matching.rules import CROSS_BORDER_BONUS, Profile, fit_basis, match, words
from c2f_shared.events import Need, Offer

SENSORS_ES = Offer(
    title="Sensores de calidad del aire",
    description="Estaciones IoT que miden partículas y NO2 en tiempo real para ayuntamientos.",
    category="air_quality_monitoring",
    language="es",
)
NEEDS_SENSORS_BG = Need(
    title="Сензори за качество на въздуха",
    description="Търсим доставчик на сензори за нашата платформа за градски данни.",
    kind="supplier",
    category="air_quality_monitoring",
    language="bg",
)
INSULATION_IT = Offer(
    title="Pannelli isolanti in fibra di legno",
    description="Isolamento termico per la riqualificazione degli edifici.",
    category="insulation_materials",
    language="it",
)


def profile(pid: str, company: str, country: str, offers=(), needs=()) -> Profile:
    return Profile(
        participant_id=pid,
        company_id=company,
        company_name=company.title(),
        country=country,
        offers=tuple(offers),
        needs=tuple(needs),
    )


def test_same_category_fits_across_languages() -> None:
    assert fit_basis(SENSORS_ES, NEEDS_SENSORS_BG) == "category air_quality_monitoring"


def test_unrelated_offer_does_not_fit() -> None:
    assert fit_basis(INSULATION_IT, NEEDS_SENSORS_BG) is None


def test_shared_words_fit_without_a_category() -> None:
    need = Need(
        title="Partner for smart parking sensors",
        description="We look for parking occupancy sensors for our city app.",
        kind="partner",
        language="en",
    )
    offer = Offer(
        title="Parking occupancy sensors",
        description="Magnetic sensors that detect free parking spaces.",
        category="smart_parking",
        language="en",
    )
    basis = fit_basis(offer, need)
    assert basis is not None and basis.startswith("shared words")
    assert "parkin" in basis and "sensor" in basis


def test_one_shared_word_is_not_enough() -> None:
    need = Need(title="Sensors", description="Anything", kind="partner", language="en")
    offer = Offer(title="Sensors", description="Other", category="iot_sensors", language="en")
    assert fit_basis(offer, need) is None


def test_words_drop_accents_case_and_short_words() -> None:
    assert words("Calidad del AIRE, partículas") == {"calida", "aire", "partic"}


def test_match_gives_reasons_in_both_directions_and_a_cross_border_bonus() -> None:
    sofia = profile("p1", "airdata", "BG", needs=[NEEDS_SENSORS_BG])
    bilbao = profile("p2", "sensores", "ES", offers=[SENSORS_ES])
    found = match(sofia, bilbao)
    assert found is not None
    score, reasons = found
    assert score == 1 + CROSS_BORDER_BONUS
    assert [(r.offered_by, r.needed_by) for r in reasons] == [("p2", "p1")]
    assert reasons[0].offer_title == SENSORS_ES.title
    assert reasons[0].need_title == NEEDS_SENSORS_BG.title


def test_no_match_without_a_fit() -> None:
    assert (
        match(
            profile("p1", "a", "BG", needs=[NEEDS_SENSORS_BG]),
            profile("p2", "b", "IT", offers=[INSULATION_IT]),
        )
        is None
    )


def test_two_participants_of_the_same_company_never_match() -> None:
    a = profile("p1", "same", "ES", offers=[SENSORS_ES], needs=[NEEDS_SENSORS_BG])
    b = profile("p2", "same", "ES", offers=[SENSORS_ES], needs=[NEEDS_SENSORS_BG])
    assert match(a, b) is None


def test_same_country_scores_lower_than_cross_border() -> None:
    seeker = profile("p1", "a", "ES", needs=[NEEDS_SENSORS_BG])
    local = profile("p2", "b", "ES", offers=[SENSORS_ES])
    abroad = profile("p3", "c", "RS", offers=[SENSORS_ES])
    local_score = match(seeker, local)
    abroad_score = match(seeker, abroad)
    assert local_score is not None and abroad_score is not None
    assert abroad_score[0] > local_score[0]
