"""Country names of the case files (JHU CSSE, the course's pivot) as the ISO 3166 alpha-2 codes that
pygal's world map is keyed by, and why a name cannot be drawn."""

from __future__ import annotations

# JHU / course country names that differ from pygal's names, as ISO 3166 alpha-2 codes (pygal's keys).
COUNTRY_CODES = {
    "US": "us",
    "Korea, South": "kr",
    "Korea South": "kr",
    "Korea, North": "kp",
    "Taiwan*": "tw",
    "Congo (Kinshasa)": "cd",
    "Congo (Brazzaville)": "cg",
    "Burma": "mm",
    "Cote d'Ivoire": "ci",
    "Holy See": "va",
    "Iran": "ir",
    "Russia": "ru",
    "Syria": "sy",
    "Vietnam": "vn",
    "Laos": "la",
    "Bolivia": "bo",
    "Venezuela": "ve",
    "Tanzania": "tz",
    "Moldova": "md",
    "Brunei": "bn",
    "Czechia": "cz",
    "North Macedonia": "mk",
    "Eswatini": "sz",
    "Cabo Verde": "cv",
    "Libya": "ly",
    "West Bank and Gaza": "ps",
    "Micronesia": "fm",
    "Kosovo": "xk",
    # ISO codes of countries that pygal's world map has no shape for (small states, islands).
    "Antigua and Barbuda": "ag",
    "Bahamas": "bs",
    "Barbados": "bb",
    "Comoros": "km",
    "Dominica": "dm",
    "Fiji": "fj",
    "Grenada": "gd",
    "Kiribati": "ki",
    "Marshall Islands": "mh",
    "Nauru": "nr",
    "Palau": "pw",
    "Qatar": "qa",
    "Saint Kitts and Nevis": "kn",
    "Saint Lucia": "lc",
    "Saint Vincent and the Grenadines": "vc",
    "Samoa": "ws",
    "Solomon Islands": "sb",
    "South Sudan": "ss",
    "Tonga": "to",
    "Trinidad and Tobago": "tt",
    "Tuvalu": "tv",
    "Vanuatu": "vu",
}
# Rows of the JHU file that are not countries.
NOT_COUNTRIES = {"Diamond Princess", "MS Zaandam", "Summer Olympics 2020", "Winter Olympics 2022"}


def map_country(name: str) -> tuple[str | None, str]:
    """(pygal code, "") for a country on pygal's world map, else (None, why it cannot be drawn)."""
    from pygal_maps_world.i18n import COUNTRIES

    if name in NOT_COUNTRIES:
        return None, "not a country (a ship or an event)"
    by_name = {country.lower(): code for code, country in COUNTRIES.items()}
    code = COUNTRY_CODES.get(name) or by_name.get(name.lower())
    if code is None:
        return None, "no ISO code known for this name"
    if code not in COUNTRIES:
        return None, f"pygal's world map has no shape for {code!r}"
    return code, ""
