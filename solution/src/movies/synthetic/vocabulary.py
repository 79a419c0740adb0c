"""What the synthetic titles are made of: IMDb's title types and genres with their shares, the
words and quirky titles, and the fixed movies that put every quirk in a data set of any size."""

from __future__ import annotations

import numpy as np

# (titleType, share of title.basics, share of that type with a ratings row)
TITLE_TYPES: tuple[tuple[str, float, float], ...] = (
    ("tvEpisode", 0.7692, 0.0737),
    ("short", 0.0913, 0.1620),
    ("movie", 0.0609, 0.6714),
    ("video", 0.0261, 0.1670),
    ("tvSeries", 0.0243, 0.3570),
    ("tvMovie", 0.0130, 0.3670),
    ("tvMiniSeries", 0.0052, 0.3330),
    ("tvSpecial", 0.0048, 0.1820),
    ("videoGame", 0.0039, 0.4440),
    ("tvShort", 0.0011, 0.2500),
    ("tvPilot", 0.0002, 0.0500),
)
TYPE_NAMES = np.array([t[0] for t in TITLE_TYPES], dtype=object)
TYPE_SHARES = np.array([t[1] for t in TITLE_TYPES])
TYPE_SHARES = TYPE_SHARES / TYPE_SHARES.sum()
TYPE_RATED = np.array([t[2] for t in TITLE_TYPES])
TYPE_INDEX = {name: i for i, name in enumerate(TYPE_NAMES)}
MOVIE = TYPE_INDEX["movie"]
EPISODE = TYPE_INDEX["tvEpisode"]
SHORT = TYPE_INDEX["short"]
SERIES = (TYPE_INDEX["tvSeries"], TYPE_INDEX["tvMiniSeries"])

# IMDb's 28 genres with relative frequencies for feature-length titles and for TV titles.
GENRES: tuple[tuple[str, float, float], ...] = (
    ("Action", 7.0, 4.0),
    ("Adult", 0.6, 0.2),
    ("Adventure", 4.0, 3.0),
    ("Animation", 2.0, 5.0),
    ("Biography", 3.0, 1.0),
    ("Comedy", 18.0, 20.0),
    ("Crime", 6.0, 5.0),
    ("Documentary", 16.0, 8.0),
    ("Drama", 33.0, 18.0),
    ("Family", 3.0, 5.0),
    ("Fantasy", 2.5, 2.0),
    ("Film-Noir", 0.08, 0.01),
    ("Game-Show", 0.02, 3.0),
    ("History", 2.5, 2.0),
    ("Horror", 6.0, 1.0),
    ("Music", 2.5, 3.0),
    ("Musical", 1.5, 0.3),
    ("Mystery", 3.0, 2.0),
    ("News", 0.1, 6.0),
    ("Reality-TV", 0.05, 9.0),
    ("Romance", 7.0, 6.0),
    ("Sci-Fi", 2.0, 1.0),
    ("Short", 0.01, 0.5),
    ("Sport", 1.0, 2.0),
    ("Talk-Show", 0.03, 7.0),
    ("Thriller", 7.0, 1.5),
    ("War", 1.5, 0.5),
    ("Western", 1.0, 0.5),
)
GENRE_NAMES = [g[0] for g in GENRES]

ADJECTIVES = (
    "Last Silent Dark Golden Broken Hidden Lost Wild Red Blue Black White Secret Little Great "
    "Long Cold Burning Final Forgotten Eternal Sweet Bitter Crimson Frozen Distant Lonely Savage "
    "Quiet Endless Hollow Iron Velvet Electric Midnight Wicked Restless Gentle Shattered Fallen "
    "Rising Sacred Strange Invisible Naked Deadly Perfect Happy Dangerous Young Old New Second "
    "Seventh Magnificent Crazy Beautiful Ugly Brave Proud Holy Mad Sudden Violent Tender Empty"
).split()
NOUNS = (
    "Night Day City River Road House Heart Dream Love War Sky Sea Storm Fire Rain Shadow Moon "
    "Sun Star Garden Island Mountain Summer Winter Journey Stranger Brother Sister Mother Father "
    "Daughter Son King Queen Girl Boy Man Woman Child Ghost Angel Devil Hunter Soldier Doctor "
    "Detective Witness Promise Secret Truth Lie Game Kiss Song Dance Wolf Horse Bird Dog Cat "
    "Train Bridge Harbor Valley Desert Forest Empire Kingdom Revolution Escape Return Revenge "
    "Silence Mirror Door Window Letter Voice Memory Time Life Death Blood Money Gold Diamond "
    "Line Edge Circle Hour Minute Season Wedding Funeral Party Crossing Frontier Border"
).split()
NAMES = (
    "Anna Maria John Paul Mary Peter Laura Jack Rosa Ivan Ali Mei Yuki Omar Elena Carlos Ingrid "
    "Hans Pierre Sofia Lucia Raj Priya Kofi Amara Sven Olga Dmitri Chen Hiro Fatima Leila Tomas"
).split()
PLACES = [
    *"Paris Rome Berlin Tokyo London Cairo Lagos Lima Oslo Vienna Madrid Seoul".split(),
    *"Mumbai Texas".split(),
    *"Chicago Brooklyn Havana Istanbul Manila Dakar Warsaw Prague Naples Sicily".split(),
    "Hong Kong",
    "Rio de Janeiro",
]
MONTHS = (
    "January February March April May June July August September October November December"
).split()
# Foreign originals, one or two per script; combined with a counter word to make many.
FOREIGN_TITLES = (
    "Le fabuleux destin",
    "La vie en rose",
    "Les quatre cents coups",
    "À bout de souffle",
    "Été 85",
    "L'arrivée d'un train à La Ciotat",
    "Über den Dächern",
    "Überflüssige Menschen",
    "Das Leben der Anderen",
    "Smörgåsbord för själen",
    "El laberinto del fauno",
    "Niño pequeño, mañana",
    "Cidade de Deus",
    "Ladri di biciclette",
    "Ça ira, señor",
    "Jeune fille à la fenêtre",
    "Cafe\u0301 de la Gare",
    "Čierny Peter",
    "Łódź nocą",
    "Брат",
    "Война и мир",
    "Ο θίασος",
    "千と千尋の神隠し",
    "七人の侍",
    "霸王别姬",
    "花樣年華",
    "기생충",
    "올드보이",
    "الرسالة",
    "وجدة",
    "ואלס עם באשיר",
    "देवदास",
    "ฟ้าทะลายโจร",
    "Nuovo Cinema Paradiso",
    "Fröken Julie",
    "Ó Paí, Ó",
)
EMOJI_TITLES = ("🎬 Movie Night 🍿", "Love ❤️ Story", "😀 Happy", "🦄 Unicorn Dreams", "👻")
NA_TITLES = ("NA", "null", "None", "NaN", "N/A", "nan", "NULL", "#N/A", "<NA>", "True", "1917")
QUOTE_TEMPLATES = (
    '"{t}"',
    '"{t}" Live',
    'The "{t}"',
    '{t} "Special"',
    '12" {t}',
    '"{t}',
)
LONG_TITLE_WORDS = (
    "The Fable of the Kid Who Shifted His Ideals to Golf and Finally Became a Baseball Fan and "
    "Took the Only Known Cure for the Condition Known as"
).split()

# Movies written at fixed places (the first movie rows) so every quirk occurs at any scale:
# (primaryTitle, originalTitle or None for the same, isAdult, startYear, runtime, genres,
#  (averageRating, numVotes) or None for no ratings row).
FIXED_MOVIES: tuple[tuple, ...] = (
    ('"Giliap"', None, 0, 1975, 137, "Crime,Drama", (6.8, 2041)),
    ('The "Best" Years', None, 0, 1999, 101, "Comedy", (6.8, 2041)),
    ('"Unbalanced quote', None, 0, 2004, 88, "Drama", (5.5, 77)),
    ('12" Single', None, 0, 2011, 95, "Music", None),
    ("NA", None, 0, 2015, 90, "Drama", (6.1, 120)),
    ("null", None, 0, 2012, 85, "Thriller", (5.0, 40)),
    ("None", None, 0, 2019, 99, "Comedy", None),
    ("NaN", None, 0, 2021, 92, "Documentary", (7.2, 15)),
    ("N/A", None, 0, 2008, 78, "Horror", (4.4, 310)),
    ("nan", "NaN", 0, 2020, 101, "Drama", (6.1, 120)),
    ("NULL", None, 0, 2016, 80, "Sci-Fi", (3.9, 55)),
    ("#N/A", None, 0, 2017, 110, "Crime", None),
    ("Love\\Hate", None, 0, 2010, 96, "Drama,Romance", (6.6, 430)),
    ("Ends With A Backslash\\", None, 0, 2013, 88, "Drama", (6.6, 430)),
    (" ".join(LONG_TITLE_WORDS * 3), None, 0, 1916, 12, "Comedy", (5.9, 21)),
    ("Amélie Blues", "Le fabuleux destin d'Amélie Blues", 0, 2001, 122, "Comedy", (8.3, 800000)),
    ("Spirited Away Again", "千と千尋の神隠し 2", 0, 2003, 125, "Animation,Family", (8.6, 31000)),
    ("The Message Returns", "الرسالة", 0, 1976, 177, "Biography,Drama,History", (8.1, 9000)),
    ("Waltz", "ואלס עם באשיר", 0, 2008, 90, "Animation,Documentary,War", (8.0, 61000)),
    ("🎬 Movie Night 🍿", None, 0, 2022, 93, "Comedy", (7.0, 12)),
    ("Cafe\u0301 Combining", None, 0, 1990, 95, "Drama", None),
    ("No Year", None, 0, None, 95, "Drama", None),
    ("No Runtime", None, 0, 1994, None, "Drama", (7.4, 1200)),
    ("No Genres", None, 0, 1994, 100, None, (7.4, 1200)),
    ("Nothing Known", None, 0, None, None, None, None),
    ("Adult Feature", None, 1, 1998, 84, "Adult", (5.2, 60)),
    ("Perfect Ten", None, 0, 2023, 70, "Documentary", (10.0, 5)),
    ("Perfect Ten, Twice", None, 0, 2024, 71, "Documentary", (10.0, 6)),
    ("The Worst", None, 0, 2005, 80, "Horror", (1.0, 9000)),
    ("The Most Watched", None, 0, 2008, 152, "Action,Crime,Drama", (9.0, 3_000_000)),
    ("Earliest", None, 0, 1874, 1, "Documentary,Short", (6.8, 2300)),
    ("Not Released Yet", None, 0, 2031, None, "Sci-Fi", None),
    ("Logistics", None, 0, 2012, 51420, "Documentary", (5.0, 800)),
)
