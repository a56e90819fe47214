"""The partnership's controlled vocabularies, as registration validates them.

Event models carry these as plain strings so that a consumer built before a term
was added still reads the event; registration is where a term is checked.
"""

from enum import StrEnum


class Sector(StrEnum):
    ICT = "ict"
    MOBILITY = "mobility"
    CONSTRUCTION = "construction"
    ENVIRONMENTAL_TECHNOLOGIES = "environmental_technologies"
    ENERGY = "energy"


class Category(StrEnum):
    """What an offer is, or what a need is about."""

    AIR_QUALITY_MONITORING = "air_quality_monitoring"
    IOT_SENSORS = "iot_sensors"
    TRAFFIC_MANAGEMENT = "traffic_management"
    SMART_PARKING = "smart_parking"
    E_MOBILITY_CHARGING = "e_mobility_charging"
    PUBLIC_TRANSPORT_SOFTWARE = "public_transport_software"
    ROAD_SAFETY = "road_safety"
    BUILDING_ENERGY_EFFICIENCY = "building_energy_efficiency"
    INSULATION_MATERIALS = "insulation_materials"
    BIM_DIGITAL_CONSTRUCTION = "bim_digital_construction"
    WASTE_MANAGEMENT = "waste_management"
    WATER_MANAGEMENT = "water_management"
    RENEWABLE_ENERGY = "renewable_energy"
    SMART_LIGHTING = "smart_lighting"
    URBAN_DATA_PLATFORMS = "urban_data_platforms"
    CYBERSECURITY = "cybersecurity"


class NeedKind(StrEnum):
    PARTNER = "partner"
    DISTRIBUTOR = "distributor"
    TECHNOLOGY = "technology"
    INVESTMENT = "investment"
    SUPPLIER = "supplier"


class Language(StrEnum):
    """The partnership's working languages; Serbian covers Latin and Cyrillic script."""

    EN = "en"
    ES = "es"
    IT = "it"
    BG = "bg"
    SR = "sr"
    EL = "el"


class Membership(StrEnum):
    FOUNDING = "founding"
    PARTNER = "partner"


class EventKind(StrEnum):
    B2B = "b2b"  # company-to-company meetings
    C2C = "c2c"  # cluster-to-cluster meetings between delegations
    WEBINAR = "webinar"


class SubSector(StrEnum):
    """Finer sectors; each belongs to one `Sector` (see SUB_SECTORS)."""

    SOFTWARE = "software"
    IOT = "iot"
    DATA_PLATFORMS = "data_platforms"
    CYBERSECURITY = "cybersecurity"
    TELECOM = "telecom"
    E_MOBILITY = "e_mobility"
    PUBLIC_TRANSPORT = "public_transport"
    TRAFFIC = "traffic"
    LOGISTICS = "logistics"
    ROAD_SAFETY = "road_safety"
    BIM = "bim"
    BUILDING_MATERIALS = "building_materials"
    ENERGY_RETROFIT = "energy_retrofit"
    SMART_BUILDINGS = "smart_buildings"
    AIR_QUALITY = "air_quality"
    WASTE = "waste"
    WATER = "water"
    CIRCULAR_ECONOMY = "circular_economy"
    RENEWABLES = "renewables"
    SMART_GRID = "smart_grid"
    LIGHTING = "lighting"
    STORAGE = "storage"


SUB_SECTORS: dict[SubSector, Sector] = {
    **dict.fromkeys(
        [
            SubSector.SOFTWARE,
            SubSector.IOT,
            SubSector.DATA_PLATFORMS,
            SubSector.CYBERSECURITY,
            SubSector.TELECOM,
        ],
        Sector.ICT,
    ),
    **dict.fromkeys(
        [
            SubSector.E_MOBILITY,
            SubSector.PUBLIC_TRANSPORT,
            SubSector.TRAFFIC,
            SubSector.LOGISTICS,
            SubSector.ROAD_SAFETY,
        ],
        Sector.MOBILITY,
    ),
    **dict.fromkeys(
        [SubSector.BIM, SubSector.BUILDING_MATERIALS, SubSector.ENERGY_RETROFIT, SubSector.SMART_BUILDINGS],
        Sector.CONSTRUCTION,
    ),
    **dict.fromkeys(
        [SubSector.AIR_QUALITY, SubSector.WASTE, SubSector.WATER, SubSector.CIRCULAR_ECONOMY],
        Sector.ENVIRONMENTAL_TECHNOLOGIES,
    ),
    **dict.fromkeys(
        [SubSector.RENEWABLES, SubSector.SMART_GRID, SubSector.LIGHTING, SubSector.STORAGE], Sector.ENERGY
    ),
}


class SizeBand(StrEnum):
    """EU SME size classes by headcount."""

    MICRO = "micro"  # < 10
    SMALL = "small"  # < 50
    MEDIUM = "medium"  # < 250
    LARGE = "large"


class Obstacle(StrEnum):
    """What stands between a member and a target market."""

    REGULATION = "regulation"
    CERTIFICATION = "certification"
    LANGUAGE = "language"
    FINANCE = "finance"
    MARKET_KNOWLEDGE = "market_knowledge"
    PARTNERS = "partners"
    PUBLIC_PROCUREMENT = "public_procurement"
    INTELLECTUAL_PROPERTY = "intellectual_property"
    LOGISTICS = "logistics"
    CULTURE = "culture"
    OTHER = "other"


class Consent(StrEnum):
    """Who may see a contact person: brochure readers (and matched companies), matched companies, no one."""

    BROCHURE = "brochure"
    MATCHES = "matches"
    NONE = "none"


class EventMode(StrEnum):
    ON_SITE = "on_site"
    VIRTUAL = "virtual"
    HYBRID = "hybrid"


class MeetingStatus(StrEnum):
    """Where a meeting request stands: requested → accepted | declined; any → cancelled."""

    REQUESTED = "requested"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    CANCELLED = "cancelled"


class FollowUp(StrEnum):
    """What came of a meeting, as one side sees it (agreements often come months later)."""

    NONE = "none"
    FURTHER_CONTACT = "further_contact"
    OFFER_SENT = "offer_sent"
    AGREEMENT_SIGNED = "agreement_signed"


def _english_territory_names() -> dict[str, str]:
    """Every ISO 3166-1 alpha-2 code's English name, from CLDR (Babel's copy)."""
    from babel import Locale

    territories = Locale("en").territories
    return {str(code): str(name) for code, name in territories.items() if len(code) == 2 and code.isalpha()}


# English names of countries and markets (ISO 3166 codes; US-CA is California, a target market
# of its own): every country a profile may name, with the partnership's own wording first.
COUNTRY_NAMES: dict[str, str] = {
    **_english_territory_names(),
    "BG": "Bulgaria",
    "ES": "Spain",
    "RS": "Serbia",
    "IT": "Italy",
    "GR": "Greece",
    "HR": "Croatia",
    "RO": "Romania",
    "MK": "North Macedonia",
    "PT": "Portugal",
    "MX": "Mexico",
    "CO": "Colombia",
    "US": "United States",
    "US-CA": "California",
    "CL": "Chile",
    "BR": "Brazil",
}
