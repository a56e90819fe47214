"""Language-neutral vectors: which language a text is in, and removing each language's mean
(with hand-made vectors: meaning in some directions, language in others)."""

import numpy as np

from c2f_matching.language import KEYS, LanguageCentres, key_for, script, serbian_to_cyrillic

DIM = 8


def unit(*weights: float) -> np.ndarray:
    v = np.array(list(weights) + [0.0] * (DIM - len(weights)), dtype=np.float32)
    return v / np.linalg.norm(v)


def test_the_script_of_a_text_is_that_of_most_of_its_letters() -> None:
    assert script("Сензори за качество на въздуха, NO2") == "Cyrl"
    assert script("Αισθητήρες ποιότητας αέρα") == "Grek"
    assert script("Senzori kvaliteta vazduha") == "Latn"
    assert script("2024 — 15 %") is None


def test_serbian_is_told_apart_by_its_script_and_other_declarations_are_checked() -> None:
    assert key_for("Senzori kvaliteta vazduha", "sr") == "sr-Latn"
    assert key_for("Сензори квалитета ваздуха", "sr") == "sr-Cyrl"
    assert key_for("Sensores de calidad del aire", "es") == "es"
    assert key_for("Сензори за качество на въздуха", "en") is None, "declared English, written in Cyrillic"
    assert key_for("whatever", "de") is None, "not a language of the partnership"


def test_serbian_latin_becomes_cyrillic_letter_for_letter() -> None:
    assert (
        serbian_to_cyrillic("Džep, ljubav, njiva, Đurđevdan, čaša, ćup")
        == "Џеп, љубав, њива, Ђурђевдан, чаша, ћуп"
    )


def centres() -> LanguageCentres:
    # each language pushes its texts along its own direction (dimensions 3..)
    offsets = np.stack([unit(*([0.0] * (3 + i % 5)), 1.0) * 0.8 for i in range(len(KEYS))]).astype(np.float32)
    return LanguageCentres("fake", {"query": offsets, "passage": offsets})


def test_removing_the_language_means_puts_meaning_before_language() -> None:
    c = centres()
    air, parking = unit(1.0, 0.2), unit(0.6, 0.8)
    bg, es = c.passage[KEYS.index("bg")], c.passage[KEYS.index("es")]
    need_bg = (air + bg)[None, :] / np.linalg.norm(air + bg)
    offer_es = (air + es)[None, :] / np.linalg.norm(air + es)
    decoy_bg = (parking + bg)[None, :] / np.linalg.norm(parking + bg)
    assert (need_bg @ decoy_bg.T).item() > (need_bg @ offer_es.T).item(), "raw: the same language wins"
    need = c.neutral(["Сензори за въздух"], need_bg.astype(np.float32), "query", ["bg"])
    offer = c.neutral(["Sensores de aire"], offer_es.astype(np.float32), "passage", ["es"])
    decoy = c.neutral(["Сензори за паркиране"], decoy_bg.astype(np.float32), "passage", ["bg"])
    assert (need @ offer.T).item() > (need @ decoy.T).item(), "neutral: the same meaning wins"
    assert np.allclose(np.linalg.norm(offer, axis=1), 1.0)


def test_an_undeclared_language_is_detected() -> None:
    c = centres()
    sr = c.query[KEYS.index("sr-Latn")]
    # letters only Serbian uses decide among the Latin-script languages
    assert c.detect("Tražimo dobavljača senzora", np.zeros(DIM, np.float32), "query") == "sr-Latn"
    # otherwise the nearest language mean of the script does
    assert c.detect("Buscamos sensores", c.query[KEYS.index("es")], "query") == "es"
    assert c.detect("Looking for sensors", sr, "query") == "sr-Latn"
    assert c.detect("Αισθητήρες", np.zeros(DIM, np.float32), "query") == "el"
    assert c.detect("Търсим доставчик", np.zeros(DIM, np.float32), "query") == "bg"


def test_the_shipped_means_belong_to_the_services_model() -> None:
    shipped = LanguageCentres.shipped()
    assert shipped.model_id == "multilingual-e5-small-q4"
    assert shipped.query.shape == shipped.passage.shape == (len(KEYS), 384)
    # a language's mean is far from the others' (else there would be nothing to remove)
    assert float(np.linalg.norm(shipped.passage[0] - shipped.passage[KEYS.index("bg")])) > 0.05
