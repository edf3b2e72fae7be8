#!/usr/bin/env python3
"""Generate the synthetic Qualtrics export data/sample/survey/emigre_panel_2022_2024.csv.

A seeded (random.Random(20221)) fake panel of Russian emigres, waves 2022-2024,
in the exact shape of a Qualtrics "Use choice text" CSV export (3 header rows,
CRLF, UTF-8 without BOM, RFC 4180 quoting).  No real person's data.

Also writes, next to the CSV:
  country_spellings.tsv  every Q1 text used -> intended ISO3 | UNRESOLVED | EMPTY | REGION
  expected_counts.json   exact counts of each kind of defect (disjoint categories)
  PROVENANCE.md          how the file was made + the summary printed by this script

Usage:  python3 scripts/gen_sample_survey.py
(Python 3.11 stdlib only; runs from any directory; output is byte-deterministic.)
"""

import csv
import io
import json
import math
import random
import struct
import sys
import unicodedata
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

SEED = 20221
REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "data" / "sample" / "survey"
CSV_NAME = "emigre_panel_2022_2024.csv"

N_LINES = 5000
N_PREVIEW = 12
N_TEST = 8
N_EXACT_DUP = 12
N_RESUBMIT = 10
N_GARBAGE = 60   # ~1.2 %
N_EMPTY = 12     # ~0.25 %
N_REGION = 5     # ~0.1 %
P_UNFINISHED = 0.066
N_ORIG = N_LINES - N_EXACT_DUP - N_RESUBMIT

TZ = "Europe/Berlin"
WAVES = [2022, 2023, 2024]
WAVE_WEIGHTS = [40, 35, 25]

# --------------------------------------------------------------------------
# Columns: (export tag = row 1, question text = row 2, ImportId, has timeZone)
COLUMNS = [
    ("StartDate", "Start Date", "startDate", True),
    ("EndDate", "End Date", "endDate", True),
    ("Status", "Response Type", "status", False),
    ("IPAddress", "IP Address", "ipAddress", False),
    ("Progress", "Progress", "progress", False),
    ("Duration (in seconds)", "Duration (in seconds)", "duration", False),
    ("Finished", "Finished", "finished", False),
    ("RecordedDate", "Recorded Date", "recordedDate", True),
    ("ResponseId", "Response ID", "_recordId", False),
    ("RecipientLastName", "Recipient Last Name", "recipientLastName", False),
    ("RecipientFirstName", "Recipient First Name", "recipientFirstName", False),
    ("RecipientEmail", "Recipient Email", "recipientEmail", False),
    ("ExternalReference", "External Data Reference", "externalDataReference", False),
    ("LocationLatitude", "Location Latitude", "locationLatitude", False),
    ("LocationLongitude", "Location Longitude", "locationLongitude", False),
    ("DistributionChannel", "Distribution Channel", "distributionChannel", False),
    ("UserLanguage", "User Language", "userLanguage", False),
    ("Q1", "In which country do you currently live?", "QID1_TEXT", False),
    ("Q2", "How old are you?", "QID2", False),
    ("Q3", "What is your highest level of education?", "QID3", False),
    ("Q4", "How likely are you to return to Russia? (1 = certainly not, 5 = certainly)", "QID4", False),
    ("Q5", "Is there anything else you would like to tell us?", "QID5_TEXT", False),
    ("wave", "wave", "wave", False),
    ("weight", "weight", "weight", False),
]
TAGS = [c[0] for c in COLUMNS]


def import_id_cell(import_id, tz):
    d = {"ImportId": import_id}
    if tz:
        d["timeZone"] = TZ
    return json.dumps(d, separators=(",", ":"))


# --------------------------------------------------------------------------
# Host countries: ISO3 -> (base weight, city for geolocation (lat, lon))
HOSTS = {
    "GEO": (14.0, (41.7151, 44.8271)), "ARM": (11.0, (40.1792, 44.4991)),
    "TUR": (10.0, (41.0082, 28.9784)), "KAZ": (9.0, (43.2220, 76.8512)),
    "SRB": (8.0, (44.7866, 20.4489)), "DEU": (8.0, (52.5200, 13.4050)),
    "ISR": (7.0, (32.0853, 34.7818)), "USA": (6.0, (40.7128, -74.0060)),
    "GBR": (2.0, (51.5072, -0.1276)), "FRA": (2.0, (48.8566, 2.3522)),
    "FIN": (1.5, (60.1699, 24.9384)), "EST": (1.0, (59.4370, 24.7536)),
    "LVA": (1.2, (56.9496, 24.1052)), "LTU": (1.0, (54.6872, 25.2797)),
    "POL": (1.5, (52.2297, 21.0122)), "CZE": (1.5, (50.0755, 14.4378)),
    "NLD": (1.5, (52.3676, 4.9041)), "ESP": (2.0, (41.3874, 2.1686)),
    "PRT": (1.5, (38.7223, -9.1393)), "CYP": (2.0, (34.7071, 33.0226)),
    "MNE": (2.5, (42.2864, 18.8400)), "KGZ": (2.5, (42.8746, 74.5698)),
    "UZB": (2.0, (41.2995, 69.2401)), "ARE": (3.0, (25.2048, 55.2708)),
    "THA": (2.5, (7.8804, 98.3923)), "IDN": (1.5, (-8.6500, 115.2167)),
    "ARG": (2.0, (-34.6037, -58.3816)), "CAN": (1.5, (43.6532, -79.3832)),
    "MNG": (0.5, (47.8864, 106.9057)),
}
ISO3_ORDER = list(HOSTS)
# Mild drift between waves: first destinations in 2022, further ones later.
WAVE_FACTOR = {
    2022: {"GEO": 1.3, "ARM": 1.3, "KAZ": 1.4, "KGZ": 1.4, "UZB": 1.3, "MNG": 1.5, "TUR": 1.2},
    2023: {},
    2024: {"DEU": 1.3, "SRB": 1.3, "USA": 1.3, "ESP": 1.3, "PRT": 1.3, "CAN": 1.4, "ARG": 1.4,
           "KAZ": 0.7, "KGZ": 0.7, "MNG": 0.5},
}
TEAM_LOCATION = (52.5196, 13.4069)  # researchers' office (preview / test rows)

NFD = lambda s: unicodedata.normalize("NFD", s)  # noqa: E731

# Q1 spellings per ISO3, in three classes: en (English + case/space noise +
# "City, Country"), ru (Russian), other (native names, codes, diacritics).
# (text, weight); the first entry of each class is the common one.
SPELLINGS = {
    "GEO": {"en": [("Georgia", 10), ("georgia", 3), ("  georgia ", 1), ("GEORGIA", 2), ("Georgia ", 2),
                   ("Tbilisi, Georgia", 3), ("Batumi, Georgia", 1), ("Republic of Georgia", 1)],
            "ru": [("Грузия", 12), ("грузия", 3), ("Грузия ", 1), ("ГРУЗИЯ", 1),
                   ("Тбилиси, Грузия", 3), ("Батуми, Грузия", 1)],
            "other": [("Sakartvelo", 2), ("GE", 2), ("ge", 2), ("GEO", 1), ("საქართველო", 1)]},
    "ARM": {"en": [("Armenia", 10), ("armenia", 3), ("ARMENIA", 1), (" Armenia", 1), ("Yerevan, Armenia", 3)],
            "ru": [("Армения", 12), ("армения", 3), ("Ереван, Армения", 4), ("Армения, Ереван", 1)],
            "other": [("Hayastan", 1), ("AM", 1), ("ARM", 1), ("Հայաստան", 1)]},
    "TUR": {"en": [("Turkey", 10), ("turkey", 3), ("TURKEY", 1), ("Istanbul, Turkey", 3), ("Antalya, Turkey", 1)],
            "ru": [("Турция", 12), ("турция", 3), ("Стамбул, Турция", 2), ("Анталья, Турция", 1)],
            "other": [("Türkiye", 4), ("Turkiye", 3), (NFD("Türkiye"), 1), ("TR", 1), ("tr", 1),
                      ("TUR", 1), ("Türkei", 1)]},
    "KAZ": {"en": [("Kazakhstan", 10), ("kazakhstan", 2), ("Kazakstan", 1), ("Almaty, Kazakhstan", 3),
                   ("Astana, Kazakhstan", 1)],
            "ru": [("Казахстан", 12), ("казахстан", 3), ("Казахстан ", 1), ("Алматы, Казахстан", 3),
                   ("Астана, Казахстан", 1)],
            "other": [("KZ", 2), ("kz", 1), ("Qazaqstan", 1), ("Қазақстан", 1)]},
    "SRB": {"en": [("Serbia", 10), ("serbia", 3), ("SERBIA", 1), ("Belgrade, Serbia", 3), ("Novi Sad, Serbia", 1)],
            "ru": [("Сербия", 12), ("сербия", 3), ("Белград, Сербия", 3), ("Нови-Сад, Сербия", 1)],
            "other": [("Srbija", 2), ("Србија", 1), ("RS", 1), ("SRB", 1)]},
    "DEU": {"en": [("Germany", 10), ("germany", 3), ("GERMANY", 2), ("germany ", 1), ("Berlin, Germany", 3),
                   ("Munich, Germany", 1)],
            "ru": [("Германия", 12), ("германия", 3), ("Берлин, Германия", 3), ("Мюнхен, Германия", 1), ("ФРГ", 1)],
            "other": [("Deutschland", 3), ("deutschland", 1), ("DE", 1), ("DEU", 1)]},
    "ISR": {"en": [("Israel", 10), ("israel", 3), ("ISRAEL", 1), ("Tel Aviv, Israel", 3), ("Haifa, Israel", 1)],
            "ru": [("Израиль", 12), ("израиль", 3), ("Тель-Авив, Израиль", 3), ("Хайфа, Израиль", 1)],
            "other": [("ישראל", 1), ("IL", 1), ("ISR", 1)]},
    "USA": {"en": [("USA", 8), ("usa", 3), ("United States", 4), ("United States of America", 2), ("US", 2),
                   ("U.S.A.", 1), ("New York, USA", 2), ("California, USA", 1)],
            "ru": [("США", 12), ("сша", 2), ("Соединённые Штаты", 1), ("Соединенные Штаты", 1),
                   ("Нью-Йорк, США", 2), ("Штаты", 1)],
            "other": [("US", 1), ("usa", 1)]},
    "GBR": {"en": [("United Kingdom", 6), ("UK", 6), ("England", 2), ("Great Britain", 2), ("London, UK", 3),
                   ("Britain", 1)],
            "ru": [("Великобритания", 8), ("Англия", 6), ("Лондон, Великобритания", 2), ("Лондон, Англия", 1),
                   ("Британия", 1)],
            "other": [("GB", 1), ("GBR", 1), ("U.K.", 1)]},
    "FRA": {"en": [("France", 10), ("france", 2), ("Paris, France", 3)],
            "ru": [("Франция", 12), ("Париж, Франция", 3)],
            "other": [("FR", 1), ("FRA", 1)]},
    "FIN": {"en": [("Finland", 10), ("Helsinki, Finland", 2)],
            "ru": [("Финляндия", 12), ("Хельсинки, Финляндия", 2)],
            "other": [("Suomi", 2), ("FI", 1)]},
    "EST": {"en": [("Estonia", 10), ("Tallinn, Estonia", 2)],
            "ru": [("Эстония", 12), ("Таллин, Эстония", 2)],
            "other": [("Eesti", 2), ("EE", 1)]},
    "LVA": {"en": [("Latvia", 10), ("Riga, Latvia", 2)],
            "ru": [("Латвия", 12), ("Рига, Латвия", 2)],
            "other": [("Latvija", 2), ("LV", 1)]},
    "LTU": {"en": [("Lithuania", 10), ("Vilnius, Lithuania", 2)],
            "ru": [("Литва", 12), ("Вильнюс, Литва", 2)],
            "other": [("Lietuva", 2), ("LT", 1)]},
    "POL": {"en": [("Poland", 10), ("Warsaw, Poland", 2)],
            "ru": [("Польша", 12), ("Варшава, Польша", 2)],
            "other": [("Polska", 2), ("Warszawa, Polska", 1), ("PL", 1)]},
    "CZE": {"en": [("Czech Republic", 8), ("Czechia", 4), ("Czech republic", 1), ("Prague, Czech Republic", 2)],
            "ru": [("Чехия", 12), ("Прага, Чехия", 2)],
            "other": [("Česko", 2), (NFD("Česko"), 1), ("Cesko", 1), ("CZ", 1)]},
    "NLD": {"en": [("Netherlands", 8), ("the Netherlands", 3), ("Holland", 2), ("Amsterdam, Netherlands", 2)],
            "ru": [("Нидерланды", 10), ("Голландия", 4), ("Амстердам, Нидерланды", 2)],
            "other": [("Nederland", 2), ("NL", 1)]},
    "ESP": {"en": [("Spain", 10), ("spain", 2), ("Barcelona, Spain", 3), ("Valencia, Spain", 1)],
            "ru": [("Испания", 12), ("Барселона, Испания", 3), ("Валенсия, Испания", 1)],
            "other": [("España", 3), ("Espana", 1), ("ES", 1)]},
    "PRT": {"en": [("Portugal", 10), ("Portugal ", 1), ("Lisbon, Portugal", 3)],
            "ru": [("Португалия", 12), ("Лиссабон, Португалия", 3)],
            "other": [("PT", 1)]},
    "CYP": {"en": [("Cyprus", 10), ("Limassol, Cyprus", 3)],
            "ru": [("Кипр", 12), ("Лимассол, Кипр", 3)],
            "other": [("CY", 1), ("Κύπρος", 1)]},
    "MNE": {"en": [("Montenegro", 10), ("Budva, Montenegro", 2)],
            "ru": [("Черногория", 12), ("Будва, Черногория", 3), ("Бар, Черногория", 1)],
            "other": [("Crna Gora", 2), ("ME", 1)]},
    "KGZ": {"en": [("Kyrgyzstan", 10), ("Kyrgyz Republic", 1), ("Kirgizstan", 1), ("Bishkek, Kyrgyzstan", 2)],
            "ru": [("Кыргызстан", 10), ("Киргизия", 5), ("Бишкек, Кыргызстан", 2), ("Бишкек, Киргизия", 1)],
            "other": [("KG", 1)]},
    "UZB": {"en": [("Uzbekistan", 10), ("Tashkent, Uzbekistan", 2)],
            "ru": [("Узбекистан", 12), ("Ташкент, Узбекистан", 2)],
            "other": [("O'zbekiston", 1), ("UZ", 1)]},
    "ARE": {"en": [("UAE", 10), ("United Arab Emirates", 4), ("U.A.E.", 1), ("Dubai, UAE", 3)],
            "ru": [("ОАЭ", 12), ("Эмираты", 3), ("Дубай, ОАЭ", 3)],
            "other": [("AE", 1), ("Emirates", 1)]},
    "THA": {"en": [("Thailand", 10), ("Phuket, Thailand", 3), ("Bangkok, Thailand", 1)],
            "ru": [("Таиланд", 10), ("Тайланд", 4), ("Пхукет, Таиланд", 3)],
            "other": [("TH", 1), ("ประเทศไทย", 1)]},
    "IDN": {"en": [("Indonesia", 10), ("Bali, Indonesia", 4)],
            "ru": [("Индонезия", 12), ("Бали, Индонезия", 4)],
            "other": [("IDN", 1)]},
    "ARG": {"en": [("Argentina", 10), ("Buenos Aires, Argentina", 3)],
            "ru": [("Аргентина", 12), ("Буэнос-Айрес, Аргентина", 3)],
            "other": [("AR", 1)]},
    "CAN": {"en": [("Canada", 10), ("Toronto, Canada", 3), ("Vancouver, Canada", 1)],
            "ru": [("Канада", 12), ("Торонто, Канада", 3), ("Ванкувер, Канада", 1)],
            "other": [("CA", 1)]},
    "MNG": {"en": [("Mongolia", 10), ("Ulaanbaatar, Mongolia", 2)],
            "ru": [("Монголия", 12), ("Улан-Батор, Монголия", 2)],
            "other": [("MN", 1)]},
}
CLASS_WEIGHTS = {"RU": {"ru": 60, "en": 25, "other": 15}, "EN": {"ru": 10, "en": 70, "other": 20}}

GARBAGE = [("в пути", 8), ("не скажу", 8), ("везде", 6), ("?", 8), ("Earth", 5), ("xxx", 6), ("-", 5),
           ("кочую", 4), ("digital nomad", 4), ("между Грузией и Арменией", 2), ("не важно", 3),
           ("...", 3), ("asdf", 2), ("world", 2)]
EMPTY = [("", 5), ("   ", 1)]
REGION = [("Europe", 3), ("Европа", 3), ("EU", 2), ("Азия", 1), ("Балканы", 1)]

EDU_EN = ["Secondary", "Vocational", "Incomplete higher", "Higher (university degree)",
          "Academic degree (PhD or equivalent)"]
EDU_RU = ["Среднее", "Среднее специальное", "Неоконченное высшее", "Высшее", "Учёная степень"]
EDU_W = [6, 9, 15, 58, 12]  # 70 % university degree or higher

Q5_RU = [
    "Спасибо за опрос!",
    "Очень скучаю по дому, но вернуться пока не могу.",
    "Вопрос про образование неудачный: у меня два диплома, магистр и MBA.",
    "Работаю удалённо на прежнего работодателя, \"релоцировался\" вместе с командой.",
    "Не могу открыть счёт в банке, это главная проблема 😞",
    "Пожалуйста, сделайте опрос короче",
    "Первая строка.\nВторая строка, после Enter.",
    "Спасибо!\n\nУдачи вам.",
    "Было бы хорошо спросить про детей, у нас их трое.",
    "Вернусь, когда всё закончится. Если закончится.",
    "Жена осталась в Москве, я здесь с сыном; ездим друг к другу через Стамбул.",
    "Тяжело с документами: ВНЖ на год, потом опять очереди 🙏",
    "Ответ на вопрос 4 зависит от того, что будет дальше, поставил(а) наугад.",
]
Q5_EN = [
    "Thanks for doing this research 🙏",
    "Hard to answer Q4, it depends on what happens, honestly.",
    "I moved twice: first to Tbilisi, then to Belgrade.\nStill not settled.",
    "Please add \"stateless\" as an option.",
    "Good luck with the study, and stay safe ❤️",
    "My partner is Armenian, so \"return\" means something different for us.",
    "Nothing to add, thanks.",
    "Survey was fine.\nWould be nice to have a Ukrainian version too.",
]
LOREM = ["Lorem ipsum dolor sit amet", "Consectetur adipiscing elit", "Sed do eiusmod tempor",
         "Ut enim ad minim veniam"]

# Fake contact-list names (email distribution rows).  (Latin, Cyrillic)
FIRST_F = [("Anna", "Анна"), ("Maria", "Мария"), ("Elena", "Елена"), ("Olga", "Ольга"), ("Daria", "Дарья"),
           ("Ekaterina", "Екатерина"), ("Natalia", "Наталья"), ("Irina", "Ирина"), ("Sofia", "София")]
FIRST_M = [("Ivan", "Иван"), ("Alexey", "Алексей"), ("Dmitry", "Дмитрий"), ("Sergey", "Сергей"),
           ("Mikhail", "Михаил"), ("Andrey", "Андрей"), ("Pavel", "Павел"), ("Nikita", "Никита"),
           ("Artem", "Артём")]
LAST = [("Ivanov", "Иванов"), ("Smirnov", "Смирнов"), ("Kuznetsov", "Кузнецов"), ("Popov", "Попов"),
        ("Vasiliev", "Васильев"), ("Sokolov", "Соколов"), ("Mikhailov", "Михайлов"), ("Novikov", "Новиков"),
        ("Fedorov", "Фёдоров"), ("Morozov", "Морозов"), ("Volkov", "Волков"), ("Lebedev", "Лебедев"),
        ("Semenov", "Семёнов"), ("Egorov", "Егоров"), ("Pavlov", "Павлов"), ("Kozlov", "Козлов"),
        ("Orlov", "Орлов"), ("Nikolaev", "Николаев")]

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
FMT = "%Y-%m-%d %H:%M:%S"

rng = random.Random(SEED)


def wchoice(pairs):
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


# --------------------------------------------------------------------------
# Time handling.  Dates are wall-clock Europe/Berlin (the zone is only in header
# row 3).  Responses whose [StartDate, RecordedDate] touches a DST change
# window (last Sunday of March/October, 01:00-04:00 local) are re-drawn, so
# EndDate - StartDate == Duration exactly and no time is ambiguous/non-existent.
def last_sunday(year, month):
    d = datetime(year, month + 1, 1) - timedelta(days=1)
    return d - timedelta(days=(d.weekday() - 6) % 7)


DST_WINDOWS = []
for _y in WAVES:
    for _m in (3, 10):
        _s = last_sunday(_y, _m)
        DST_WINDOWS.append((_s + timedelta(hours=1), _s + timedelta(hours=4)))


def touches_dst(a, b):
    return any(a < w1 and b > w0 for w0, w1 in DST_WINDOWS)


HOUR_W = [2, 1, 1, 1, 1, 1, 2, 3, 5, 7, 8, 8, 8, 8, 8, 8, 8, 8, 9, 10, 11, 11, 8, 4]


def draw_start(wave):
    """Fielding Mar 2 - Dec 10; half of the responses in the first 6 weeks after launch."""
    first = datetime(wave, 3, 2)
    span = (datetime(wave, 12, 10) - first).days
    day = rng.randrange(42) if rng.random() < 0.5 else rng.randrange(span)
    hour = rng.choices(range(24), weights=HOUR_W)[0]
    return first + timedelta(days=day, hours=hour, minutes=rng.randrange(60), seconds=rng.randrange(60))


def f32_text(x):
    """Qualtrics-style geolocation: a float32 written as its exact decimal expansion."""
    v = struct.unpack("<f", struct.pack("<f", x))[0]
    s = format(Decimal(v), "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


def location(iso3):
    lat, lon = HOSTS[iso3][1]
    return f32_text(lat + rng.uniform(-0.25, 0.25)), f32_text(lon + rng.uniform(-0.35, 0.35))


def fake_ip():
    return rng.choice(["198.51.100.", "203.0.113."]) + str(rng.randint(1, 254))


used_ids = {}


def response_id():
    while True:
        rid = "R_" + "".join(rng.choice(ALNUM) for _ in range(15))
        if rid not in used_ids:
            used_ids[rid] = True
            return rid


def pick_iso3(wave):
    f = WAVE_FACTOR[wave]
    return rng.choices(ISO3_ORDER, weights=[HOSTS[c][0] * f.get(c, 1.0) for c in ISO3_ORDER])[0]


def pick_spelling(iso3, lang):
    cw = CLASS_WEIGHTS.get(lang, CLASS_WEIGHTS["EN"])
    cls = rng.choices(["ru", "en", "other"], weights=[cw["ru"], cw["en"], cw["other"]])[0]
    return wchoice(SPELLINGS[iso3][cls])


def age():
    if rng.random() < 0.03:
        return "-99"
    return str(min(75, max(18, int(round(rng.gauss(35, 9.5))))))


def education(lang):
    if rng.random() < 0.01:
        return ""
    i = rng.choices(range(5), weights=EDU_W)[0]
    return (EDU_RU if lang == "RU" else EDU_EN)[i]


def return_likelihood():
    if rng.random() < 0.04:
        return "-99"
    return str(rng.choices([1, 2, 3, 4, 5], weights=[45, 25, 15, 9, 6])[0])


def comment(lang):
    if rng.random() >= 0.08:
        return ""
    ru = rng.random() < (0.85 if lang == "RU" else 0.15)
    return rng.choice(Q5_RU if ru else Q5_EN)


def weight():
    return "%.4f" % min(3.0, max(0.2, rng.lognormvariate(0.0, 0.45)))


def contact(row):
    """~10 % of real respondents came through the email distribution (a contact list)."""
    fem = rng.random() < 0.5
    first = rng.choice(FIRST_F if fem else FIRST_M)
    last = rng.choice(LAST)
    cyr = rng.random() < 0.3
    lname = last[1] + ("а" if fem else "") if cyr else last[0] + ("a" if fem else "")
    row["RecipientLastName"] = lname
    row["RecipientFirstName"] = first[1] if cyr else first[0]
    row["RecipientEmail"] = "%s.%s%d@example.org" % (first[0].lower(), (last[0] + ("a" if fem else "")).lower(),
                                                    rng.randint(1, 999))
    if rng.random() < 0.6:
        row["ExternalReference"] = "EMG-%05d" % rng.randint(1, 30000)


def set_times(row, start, duration, recorded_delay):
    end = start + timedelta(seconds=duration)
    rec = end + recorded_delay
    row["StartDate"], row["EndDate"], row["RecordedDate"] = start.strftime(FMT), end.strftime(FMT), rec.strftime(FMT)
    row["Duration (in seconds)"] = str(duration)
    row["_rec"] = rec


def blank_row(wave):
    row = {t: "" for t in TAGS}
    row["wave"] = str(wave)
    return row


_region_turn = list(range(N_REGION))


def real_row(wave, kind):
    """kind: clean | unfinished | garbage | empty | region."""
    row = blank_row(wave)
    row["Status"] = "IP Address"
    row["IPAddress"] = fake_ip()
    lang = "RU" if rng.random() < 0.70 else "EN"
    row["UserLanguage"] = lang
    row["DistributionChannel"] = "anonymous"
    if rng.random() < 0.10:
        row["DistributionChannel"] = "email"
        contact(row)
    elif rng.random() < 0.01:
        row["ExternalReference"] = "EMG-%05d" % rng.randint(1, 30000)
    iso3 = pick_iso3(wave)
    row["_iso3"] = iso3
    if kind == "garbage":
        row["Q1"], row["_q1class"] = wchoice(GARBAGE), "UNRESOLVED"
    elif kind == "empty":
        row["Q1"], row["_q1class"] = wchoice(EMPTY), "EMPTY"
    elif kind == "region":  # each region text in turn, so all of them occur
        row["Q1"], row["_q1class"] = REGION[_region_turn.pop(0) % len(REGION)][0], "REGION"
    else:
        row["Q1"], row["_q1class"] = pick_spelling(iso3, lang), iso3
    row["Q2"], row["Q3"], row["Q4"], row["Q5"] = age(), education(lang), return_likelihood(), comment(lang)
    row["weight"] = weight()
    if kind == "unfinished":
        progress = rng.choices([17, 33, 50, 83], weights=[35, 25, 20, 20])[0]
        answered = {17: 1, 33: 2, 50: 3, 83: 4}[progress]
        for q in ("Q1", "Q2", "Q3", "Q4", "Q5")[answered:]:
            row[q] = ""
        row["Progress"], row["Finished"] = str(progress), "False"
        # Qualtrics records no geolocation for auto-closed partial responses.
        while True:
            start = draw_start(wave)
            if rng.random() < 0.15:
                dur = rng.randint(1800, 90000)   # left the tab open, came back later
            else:
                dur = max(5, int(rng.lognormvariate(math.log(25 * answered), 0.7)))
            delay = timedelta(days=7, seconds=rng.randint(1, 9))  # auto-close after 7 days
            if not touches_dst(start, start + timedelta(seconds=dur) + delay):
                break
    else:
        row["LocationLatitude"], row["LocationLongitude"] = location(iso3)
        row["Progress"], row["Finished"] = "100", "True"
        while True:
            start = draw_start(wave)
            if rng.random() < 0.01:
                dur = rng.randint(3600, 40000)
            else:
                dur = min(3600, max(30, int(rng.lognormvariate(math.log(190), 0.55))))
            delay = timedelta(seconds=rng.randint(1, 2))
            if not touches_dst(start, start + timedelta(seconds=dur) + delay):
                break
    set_times(row, start, dur, delay)
    row["ResponseId"] = response_id()
    return row


def preview_row(wave, i):
    """Researcher clicking through the preview on launch day (Mar 1)."""
    row = blank_row(wave)
    row["Status"], row["DistributionChannel"] = "Survey Preview", "preview"
    lang = "RU" if i % 2 == 0 else "EN"
    row["UserLanguage"] = lang
    row["LocationLatitude"], row["LocationLongitude"] = f32_text(TEAM_LOCATION[0]), f32_text(TEAM_LOCATION[1])
    iso3 = rng.choice(["GEO", "ARM", "TUR", "KAZ", "SRB", "DEU", "ISR", "USA"])
    row["_iso3"], row["_q1class"] = iso3, iso3
    row["Q1"] = SPELLINGS[iso3]["ru" if lang == "RU" else "en"][0][0]
    row["Q2"], row["Q3"] = str(rng.randint(25, 60)), education(lang) or (EDU_RU if lang == "RU" else EDU_EN)[3]
    row["Q4"], row["Q5"] = str(rng.randint(1, 5)), rng.choice(["", "", "test", "проверка"])
    row["Progress"], row["Finished"] = "100", "True"
    start = datetime(wave, 3, 1, 9 + i, rng.randrange(60), rng.randrange(60))
    set_times(row, start, rng.randint(25, 240), timedelta(seconds=rng.randint(1, 2)))
    row["ResponseId"] = response_id()
    return row


def test_rows(wave, n):
    """Qualtrics 'Generate test responses': a burst of rows in the same few seconds,
    DistributionChannel test, UserLanguage empty, lorem-ipsum text entry."""
    rows = []
    t = datetime(wave, 3, 1, 15, rng.randrange(60), rng.randrange(60))
    for _ in range(n):
        row = blank_row(wave)
        row["Status"], row["DistributionChannel"] = "Survey Test", "test"
        row["LocationLatitude"], row["LocationLongitude"] = f32_text(TEAM_LOCATION[0]), f32_text(TEAM_LOCATION[1])
        iso3 = rng.choice(ISO3_ORDER)
        row["_iso3"], row["_q1class"] = iso3, iso3
        row["Q1"] = SPELLINGS[iso3]["en"][0][0]
        row["Q2"], row["Q3"] = str(rng.randint(18, 75)), rng.choice(EDU_EN)
        row["Q4"], row["Q5"] = str(rng.randint(1, 5)), rng.choice(LOREM)
        row["Progress"], row["Finished"] = "100", "True"
        dur = rng.randint(0, 1)
        set_times(row, t, dur, timedelta(0))
        t += timedelta(seconds=dur + rng.randint(0, 1))
        row["ResponseId"] = response_id()
        rows.append(row)
    return rows


def resubmission(orig):
    """Same respondent re-opening the link: same ResponseId, later RecordedDate,
    possibly other answers (Q1 may be spelled differently but names the same country)."""
    row = dict(orig)
    if rng.random() < 0.5:
        row["IPAddress"] = fake_ip()
    if rng.random() < 0.5:
        row["Q1"] = pick_spelling(orig["_iso3"], orig["UserLanguage"])
    if rng.random() < 0.4:
        row["Q4"] = str(rng.randint(1, 5))
    if rng.random() < 0.3:
        row["Q5"] = rng.choice(Q5_RU if orig["UserLanguage"] == "RU" else Q5_EN)
    row["LocationLatitude"], row["LocationLongitude"] = location(orig["_iso3"])
    while True:
        start = orig["_rec"] + timedelta(days=rng.randint(1, 20), seconds=rng.randint(0, 86399))
        dur = min(3600, max(30, int(rng.lognormvariate(math.log(150), 0.5))))
        delay = timedelta(seconds=rng.randint(1, 2))
        if not touches_dst(start, start + timedelta(seconds=dur) + delay):
            break
    set_times(row, start, dur, delay)
    return row


# --------------------------------------------------------------------------
def build():
    # 1. Roles for the N_ORIG original responses.
    idx = list(range(N_ORIG))
    special = rng.sample(idx, N_PREVIEW + N_TEST + N_GARBAGE + N_EMPTY + N_REGION)
    role = ["clean"] * N_ORIG
    pos = 0
    for name, n in (("preview", N_PREVIEW), ("test", N_TEST), ("garbage", N_GARBAGE),
                    ("empty", N_EMPTY), ("region", N_REGION)):
        for i in special[pos:pos + n]:
            role[i] = name
        pos += n
    for i in idx:
        if role[i] == "clean" and rng.random() < P_UNFINISHED:
            role[i] = "unfinished"

    # 2. Generate.  Preview / test rows are spread 4/4/4 and 3/3/2 over the waves.
    preview_waves = [2022] * 4 + [2023] * 4 + [2024] * 4
    test_waves = {2022: 3, 2023: 3, 2024: 2}
    rows = []
    np = 0
    for i in idx:
        if role[i] == "preview":
            rows.append(preview_row(preview_waves[np], np % 4))
            rows[-1]["_role"] = "preview"
            np += 1
        elif role[i] == "test":
            continue  # generated as bursts below
        else:
            wave = rng.choices(WAVES, weights=WAVE_WEIGHTS)[0]
            rows.append(real_row(wave, role[i]))
            rows[-1]["_role"] = role[i]
    for wave in WAVES:
        for r in test_rows(wave, test_waves[wave]):
            r["_role"] = "test"
            rows.append(r)
    assert len(rows) == N_ORIG

    # 3. Export order: by RecordedDate (as Qualtrics does), ties by ResponseId.
    rows.sort(key=lambda r: (r["_rec"], r["ResponseId"]))

    # 4. Resubmissions (same ResponseId, later RecordedDate) of clean rows.
    clean = [i for i, r in enumerate(rows) if r["_role"] == "clean"]
    picks = rng.sample(clean, N_EXACT_DUP + N_RESUBMIT)
    dup_src, resub_src = picks[:N_EXACT_DUP], picks[N_EXACT_DUP:]
    for i in resub_src:
        while True:
            r = resubmission(rows[i])
            if r["_rec"] < datetime(rows[i]["_rec"].year, 12, 31):
                break
        r["_role"] = "resubmission"
        rows[i]["_role"] = "resubmitted_original"
        rows.append(r)
    for i in dup_src:
        rows[i]["_role"] = "duplicated_original"
    dup_rows = [rows[i] for i in dup_src]
    rows.sort(key=lambda r: (r["_rec"], r["ResponseId"]))

    # 5. Exact duplicate lines: the same line again, somewhere later in the file.
    for orig in dup_rows:
        at = next(k for k, r in enumerate(rows) if r is orig)
        copy = dict(orig)
        copy["_role"] = "exact_duplicate"
        rows.insert(rng.randint(at + 2, len(rows)), copy)
    assert len(rows) == N_LINES
    return rows


def write_csv(rows):
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(TAGS)
    w.writerow([c[1] for c in COLUMNS])
    w.writerow([import_id_cell(c[2], c[3]) for c in COLUMNS])
    for r in rows:
        w.writerow([r[t] for t in TAGS])
    data = buf.getvalue().encode("utf-8")
    (OUT / CSV_NAME).write_bytes(data)
    return data


def spellings_table(rows):
    seen = {}
    for r in rows:
        t, c = r["Q1"], r["_q1class"]
        if r["Finished"] == "False" and t == "":
            continue  # unfinished rows always answered Q1
        if t in seen and seen[t] != c:
            sys.exit(f"spelling {t!r} used for both {seen[t]} and {c}")
        seen[t] = c
    for t in seen:
        if any(ch in t for ch in "\t\r\n\""):
            sys.exit(f"spelling {t!r} not TSV-safe")
    order = {c: i for i, c in enumerate(ISO3_ORDER + ["REGION", "UNRESOLVED", "EMPTY"])}
    items = sorted(seen.items(), key=lambda kv: (order[kv[1]], kv[0]))
    text = "text\tintended\n" + "".join(f"{t}\t{c}\n" for t, c in items)
    (OUT / "country_spellings.tsv").write_bytes(text.encode("utf-8"))
    return seen


def verify_and_count(data, spell):
    """Re-parse the written bytes and count everything from the file itself."""
    assert not data.startswith(b"\xef\xbb\xbf")
    recs = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert recs[0] == TAGS and len(recs) == 3 + N_LINES, len(recs)
    body = [dict(zip(TAGS, r)) for r in recs[3:]]
    lines = [tuple(r) for r in recs[3:]]
    seen_line, seen_id = {}, {}
    c = {k: 0 for k in ("survey_preview", "survey_test", "unfinished", "exact_duplicates",
                        "repeated_response_ids", "country_garbage", "country_empty", "country_region")}
    defects_per_row = []
    for ln, r in zip(lines, body):
        d = []
        if ln in seen_line:
            d.append("exact_duplicates")
        elif r["ResponseId"] in seen_id:
            d.append("repeated_response_ids")
        seen_line[ln] = True
        seen_id[r["ResponseId"]] = True
        if r["Status"] == "Survey Preview":
            d.append("survey_preview")
        elif r["Status"] == "Survey Test":
            d.append("survey_test")
        if r["Finished"] == "False":
            d.append("unfinished")
        cls = spell.get(r["Q1"])
        if cls == "UNRESOLVED":
            d.append("country_garbage")
        elif cls == "EMPTY":
            d.append("country_empty")
        elif cls == "REGION":
            d.append("country_region")
        if len(d) > 1:
            sys.exit(f"row {r['ResponseId']} has several defects: {d}")
        for k in d:
            c[k] += 1
        defects_per_row.append(d)
    clean = [r for r, d in zip(body, defects_per_row) if not d]
    return body, c, clean


def summary_lines(body, c, clean, spell):
    def count(key, rows=body):
        out = {}
        for r in rows:
            out[key(r)] = out.get(key(r), 0) + 1
        return out

    def fmt(d, keys=None):
        keys = keys if keys is not None else sorted(d)
        return ", ".join(f"{k if k != '' else '(empty)'}: {d.get(k, 0)}" for k in keys)

    real = [r for r in body if r["Status"] == "IP Address"]
    finished_real = [r for r in real if r["Finished"] == "True"]
    unf = [r for r in body if r["Finished"] == "False"]
    used_variants = {}
    for r in body:
        used_variants[r["Q1"]] = True
    L = [
        f"data lines: {len(body)} (after 3 header rows); distinct ResponseIds: {len(count(lambda r: r['ResponseId']))}",
        f"wave: {fmt(count(lambda r: r['wave']))}",
        f"Status: {fmt(count(lambda r: r['Status']))}",
        f"DistributionChannel: {fmt(count(lambda r: r['DistributionChannel']))}",
        f"UserLanguage: {fmt(count(lambda r: r['UserLanguage']))}",
        f"survey_preview: {c['survey_preview']}, survey_test: {c['survey_test']}",
        f"unfinished (Finished=False): {c['unfinished']}; by Progress: {fmt(count(lambda r: r['Progress'], unf))}",
        f"exact duplicate lines: {c['exact_duplicates']}; repeated ResponseIds (resubmissions): "
        f"{c['repeated_response_ids']}",
        f"Q1 country: garbage (UNRESOLVED) {c['country_garbage']}, empty {c['country_empty']}, "
        f"region {c['country_region']}; distinct Q1 texts: {len(used_variants)} "
        f"(country_spellings.tsv has {len(spell)} rows)",
        f"Q2 age -99: {sum(r['Q2'] == '-99' for r in body)}; Q2 empty (unfinished): {sum(r['Q2'] == '' for r in body)}",
        f"Q3 empty among finished IP Address rows: {sum(r['Q3'] == '' for r in finished_real)}; "
        f"university degree or higher among answered: "
        f"{sum(r['Q3'] in (EDU_EN[3], EDU_EN[4], EDU_RU[3], EDU_RU[4]) for r in body)}/"
        f"{sum(r['Q3'] != '' for r in body)}",
        f"Q4 -99: {sum(r['Q4'] == '-99' for r in body)}",
        f"Q5 non-empty: {sum(r['Q5'] != '' for r in body)}, of which with a newline: "
        f"{sum(chr(10) in r['Q5'] for r in body)}",
        f"email rows with recipient name/email: {sum(r['RecipientEmail'] != '' for r in body)}; "
        f"ExternalReference non-empty: {sum(r['ExternalReference'] != '' for r in body)}",
        f"weight empty (preview/test rows): {sum(r['weight'] == '' for r in body)}",
        f"clean rows (IP Address, finished, resolvable Q1, first occurrence of line and ResponseId): {len(clean)}",
        f"clean rows by wave: {fmt(count(lambda r: r['wave'], clean))}",
    ]
    return L


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rows = build()
    spell = spellings_table(rows)
    data = write_csv(rows)
    body, c, clean = verify_and_count(data, spell)
    expected = {"data_lines": len(body), "survey_preview": c["survey_preview"], "survey_test": c["survey_test"],
                "unfinished": c["unfinished"], "exact_duplicates": c["exact_duplicates"],
                "repeated_response_ids": c["repeated_response_ids"], "country_garbage": c["country_garbage"],
                "country_empty": c["country_empty"], "country_region": c["country_region"]}
    # Cross-check against what the generator intended.
    roles = {}
    for r in rows:
        roles[r["_role"]] = roles.get(r["_role"], 0) + 1
    assert expected["survey_preview"] == N_PREVIEW and expected["survey_test"] == N_TEST
    assert expected["exact_duplicates"] == N_EXACT_DUP == roles["exact_duplicate"]
    assert expected["repeated_response_ids"] == N_RESUBMIT == roles["resubmission"]
    assert expected["country_garbage"] == N_GARBAGE and expected["country_empty"] == N_EMPTY
    assert expected["country_region"] == N_REGION and expected["unfinished"] == roles["unfinished"]
    (OUT / "expected_counts.json").write_bytes((json.dumps(expected, indent=2) + "\n").encode("utf-8"))

    lines = summary_lines(body, c, clean, spell)
    print(f"wrote {(OUT / CSV_NAME).relative_to(REPO)} ({len(data)} bytes)")
    for ln in lines:
        print("  " + ln)
    write_provenance(lines, expected, len(data))


def write_provenance(lines, expected, nbytes):
    text = f"""# data/sample/survey — synthetic Qualtrics export (emigre panel 2022–2024)

**Synthetic data.** Generated by `scripts/gen_sample_survey.py` with `random.Random({SEED})`
(`python3 scripts/gen_sample_survey.py`, Python 3.11 stdlib only; re-running gives byte-identical files).
It contains **no real person's data**: ResponseIds are random, IP addresses come only from the
documentation ranges 198.51.100.0/24 and 203.0.113.0/24 (RFC 5737), e-mails are `@example.org`,
names are common Russian first/last names combined at random, geolocations are jittered city centres.

The format is modelled on the real Qualtrics exports bundled as fixtures in the R package
qualtRics (rOpenSci, `ropensci/qualtRics`, MIT licence, "Copyright (c) 2019 Julia Silge; Jasper Ginn"),
e.g. `tests/fixtures/fetch_survey.yml` (Beskar Armor export): three header rows (export tag,
question text, `{{"ImportId":…}}` JSON with `timeZone` on StartDate/EndDate/RecordedDate only),
CRLF line ends, UTF-8 without BOM, RFC 4180 quoting, embedded `\\n` inside quoted text fields,
float32-style geolocation (`40.7512969970703125`), `Survey Preview`/`Survey Test` rows, closed
partial responses with RecordedDate ≈ EndDate + 7 days and no geolocation.

## Files
* `{CSV_NAME}` — {expected['data_lines']} data lines after 3 header rows ({nbytes} bytes), time zone {TZ}.
  Columns: {", ".join(TAGS)}.
* `country_spellings.tsv` — every Q1 text that occurs (UTF-8, LF, header `text<TAB>intended`, no quoting;
  texts may have leading/trailing spaces and one entry is the empty string) → intended ISO3, or
  `UNRESOLVED` (garbage), `EMPTY` (empty / whitespace only), `REGION` (a region, not a country).
  Includes NFD-decomposed look-alikes of `Türkiye` and `Česko`.
* `expected_counts.json` — exact defect counts, disjoint: every data line has at most one defect.

## Rules the generator follows (useful for tests)
* Finished `True` ⇒ Progress 100; Finished `False` ⇒ Progress ∈ {{17, 33, 50, 83}}, questions after the
  last answered one empty (17: Q1 only, 33: Q1–Q2, 50: Q1–Q3, 83: Q1–Q4), no geolocation,
  RecordedDate = EndDate + 7 days + 1–9 s.
* Finished rows: RecordedDate = EndDate + 1–2 s (Survey Test rows: + 0 s, as in real generated test responses).
* EndDate − StartDate = Duration (in seconds) exactly for every row: responses whose StartDate…RecordedDate
  would touch a Europe/Berlin DST change (last Sunday of March/October, 01:00–04:00) were re-drawn.
* Rows are in RecordedDate order, except the 12 exact duplicate lines, which are verbatim copies of an
  earlier line inserted at a random later position.
* The 10 resubmissions reuse an earlier ResponseId with a later StartDate/RecordedDate, same wave,
  weight, UserLanguage, recipient fields and Q2/Q3; Q1 may be spelled differently but names the same
  country; Q4/Q5/IP/location may differ.
* Duplicated lines, resubmitted responses (both lines), previews and tests are all Finished=True with a
  resolvable Q1; garbage/empty/region Q1 rows are Finished=True IP Address rows.
* Survey Preview rows: DistributionChannel `preview`, empty IPAddress, the office location, launch day
  (1 March) of each wave. Survey Test rows: DistributionChannel `test`, UserLanguage empty, one burst
  per wave on 1 March, Q5 lorem ipsum. Both have an empty `weight` (embedded data not passed in).
* Missing codes: Q2 and Q4 use `-99` for "prefer not to say"; an empty cell means not answered / not shown.
* Q3 is choice text in the respondent's UserLanguage (EN: {", ".join(EDU_EN)}; RU: {", ".join(EDU_RU)}).

## Summary (printed by the script)
```
{chr(10).join(lines)}
```

## expected_counts.json
```json
{json.dumps(expected, indent=2)}
```
"""
    (OUT / "PROVENANCE.md").write_bytes(text.encode("utf-8"))


if __name__ == "__main__":
    main()
