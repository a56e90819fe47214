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
    B2B = "b2b"
    C2C = "c2c"
