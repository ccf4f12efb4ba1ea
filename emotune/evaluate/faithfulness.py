"""Faithfulness of a generated explanation to its input clues: the hallucination rate.

A reasoning model writes a paragraph from clues in words (MERR's `clue_text`: "Face: ...; Action units
at the peak frame: ...; Voice: ...; Words: "..."", or emotune's own captions). Every action unit, facial
movement, tone of voice or quoted word the paragraph *asserts* must be in the clues; the share of
assertions that are not is the hallucination rate. Scene description (clothes, room, age) asserts
nothing of these four kinds and is ignored, as are emotion inferences ("she seems angry"): the clues
cannot support or refute those, so counting them would measure style, not faithfulness.

Four kinds of assertion, each with a `key` that the clues must support:
  au     an AU code ("AU4" -> "AU04") or a FACS action-unit name ("lid tightener" -> "AU07").
  face   an everyday facial movement: a face part with a movement word next to it ("a lowered brow",
         "eyes widened", "tightening of eyelids") or one word that is itself a movement ("smile",
         "frown"); key "brow lower" / "smile", mapped to the AU codes that produce it.
  tone   a voice adjective tied to "tone/voice/intonation/pitch/speech" ("a fearful and bitter
         tone", "his tone and intonation are negative", "speaks calmly", "sounds startled"),
         key = the tone group(s) of the word ("negative", or "low_pitch|negative|quiet" for "low").
  quote  text in double quotes (straight or curly); key = the quote lower-cased, punctuation dropped.

Support is checked against the same parse of the clue text, so a phrase and its paraphrase meet through
AU codes (clue "Lower the brow" and text "furrowed brows" are both AU04) and a tone through its group
(clue "tone sounds negative" supports "a sad tone", not "a cheerful tone"). The tables were built from
the wording of MERR's 80 visual clue phrasings, its ~160 audio clue phrasings and its 4,487 reference
paragraphs; AU names are the public FACS list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("au", "face", "tone", "quote")


@dataclass(frozen=True)
class Assertion:
    kind: str  # "au" | "face" | "tone" | "quote"
    text: str  # the span as written
    key: str  # what the clues must support: "AU04", "brow lower", "negative", "let me come"
    aus: tuple[str, ...] = ()  # au and face: the AU codes that would make it true


# ---------------------------------------------------------------------------------------------- AU
# FACS action-unit names (Ekman & Friesen), as written in MERR clues and echoed by models.
FACS = {
    "AU01": ["inner brow raiser"], "AU02": ["outer brow raiser"], "AU04": ["brow lowerer"],
    "AU05": ["upper lid raiser"], "AU06": ["cheek raiser"], "AU07": ["lid tightener"],
    "AU09": ["nose wrinkler"], "AU10": ["upper lip raiser"], "AU11": ["nasolabial deepener"],
    "AU12": ["lip corner puller"], "AU13": ["cheek puffer", "sharp lip puller"], "AU14": ["dimpler"],
    "AU15": ["lip corner depressor"], "AU16": ["lower lip depressor"], "AU17": ["chin raiser"],
    "AU18": ["lip puckerer", "lip pucker"], "AU20": ["lip stretcher"], "AU22": ["lip funneler"],
    "AU23": ["lip tightener"], "AU24": ["lip pressor"], "AU25": ["lips part"], "AU26": ["jaw drop"],
    "AU27": ["mouth stretch"], "AU28": ["lip suck"], "AU31": ["jaw clencher"], "AU34": ["cheek puff"],
    "AU38": ["nostril dilator"], "AU39": ["nostril compressor"], "AU41": ["lid droop"],
    "AU43": ["eyes closed"], "AU44": ["squint"], "AU45": ["blink"], "AU46": ["wink"],
}
# One-word names ("dimpler", "blink") and "eyes closed" are read as face movements, which also catch their
# paraphrases ("dimpled", "closed her eyes").
_FACS_NAME = {n: code for code, names in FACS.items() for n in names if " " in n and n != "eyes closed"}
_FACS_RE = re.compile(r"\b(" + "|".join(sorted((n.replace(" ", r"[\s-]+") for n in _FACS_NAME), key=len, reverse=True))
                      + r")s?\b", re.I)
_AU_CODE_RE = re.compile(r"\b(?:AU\s?-?|action units?\s+)0*(\d{1,2})\b", re.I)

# ---------------------------------------------------------------------------------------------- face
# A face part (with its qualifier) and the movement word beside it. Movement words are reduced to a
# few canonical movements; (part, movement) -> AU codes, "*" being the part's default movement.
_PARTS = [  # (regex, part), longest first so "upper lip" wins over "lip"
    (r"inner (?:eye)?brows?", "inner brow"), (r"outer (?:eye)?brows?", "outer brow"),
    (r"upper (?:eye)?lids?", "upper lid"), (r"(?:eye)?lids?", "lid"),
    (r"(?:lip|mouth) corners?|corners? of (?:the |his |her |their )?(?:mouth|lips)", "lip corner"),
    (r"upper lip", "upper lip"), (r"lower lip", "lower lip"),
    (r"(?:eye)?brows?", "brow"), (r"eyes?", "eye"), (r"pupils?", "pupil"), (r"cheeks?", "cheek"),
    (r"nostrils?", "nostril"), (r"nose", "nose"), (r"lips?", "lips"), (r"mouth", "mouth"),
    (r"chin", "chin"), (r"jaw", "jaw"), (r"teeth", "teeth"), (r"forehead", "forehead"),
]
_PART_RE = re.compile(r"\b(?:" + "|".join(f"(?P<p{i}>{rx})" for i, (rx, _) in enumerate(_PARTS)) + r")\b")

_MOVES = {
    "lower": "lower lowered lowering decrease decreased lowers drawn knit knitted furrow furrowed furrowing"
             " furrows",
    "raise": "raise raised raising raises lift lifted lifting lifts elevate elevated elevation arch arched"
             " arching arches high held-high up upward upwards upturned upwardly",
    "tighten": "tighten tightened tightening tight tense tensed narrow narrowed narrowing squinted squinting",
    "open": "open opened opening wide widen widened widening apart part parted parting gaping agape drop"
            " dropped dropping enlarge enlarged enlargement enlarging dilated dilate dilation flared flaring"
            " flare stretched-open",
    "press": "press pressed pressing purse pursed pursing pucker puckered puckering compressed sucked",
    "stretch": "stretch stretched stretching elongated elongate elongation",
    "curl": "curl curled curling",
    "down": "down downturned downward downwards downwardly drooping droop droops drooped depressed turned-down sagging",
    "wrinkle": "wrinkle wrinkled wrinkling wrinkles scrunched scrunch crinkled",
    "show": "show showing shows shown bared baring exposed visible show-of",
    "close": "close closed closing shut",
    "clench": "clench clenched clenching gritted",
    "dimple": "dimple dimpled dimples",
}
_MOVE = {w: m for m, ws in _MOVES.items() for w in ws.split()}
# Words between a part and its movement that do not break the link ("tightening OF eyelids",
# "decrease IN eyebrows", "chin HELD high", "lips FORMING AN upward curve", "corners of the mouth TURNED down").
_FACE_FILL = set("a an the his her their its of in slightly slight very somewhat deeply both are is were was "
                 "held turned forming being into more noticeably visibly curved curve curving".split())
_FACE_AUS = {  # (part, movement) -> AU codes; FACS, with MERR's own clue-to-AU pairing where it is the only source
    "brow": {"lower": "AU04", "raise": "AU01 AU02", "tighten": "AU04", "wrinkle": "AU04", "*": ""},
    "inner brow": {"raise": "AU01", "lower": "AU04", "*": ""},
    "outer brow": {"raise": "AU02", "lower": "AU04", "*": ""},
    "forehead": {"wrinkle": "AU01 AU02", "raise": "AU01 AU02", "lower": "AU04", "*": ""},
    "upper lid": {"raise": "AU05", "open": "AU05", "tighten": "AU07", "lower": "AU41", "down": "AU41",
                  "close": "AU43", "*": ""},
    "lid": {"raise": "AU05", "open": "AU05", "tighten": "AU07", "lower": "AU41", "down": "AU41",
            "close": "AU43", "*": ""},
    "eye": {"open": "AU05", "raise": "AU05", "tighten": "AU06 AU07", "close": "AU43", "down": "AU41",
            "lower": "AU41", "*": ""},
    "pupil": {"open": "AU05", "*": ""},  # MERR pairs "Pupil enlargement" with AU05
    "cheek": {"raise": "AU06", "dimple": "AU14", "tighten": "AU06", "*": ""},
    "nose": {"*": "AU09"},  # wrinkle / curl / pucker the nose
    "nostril": {"open": "AU38", "press": "AU39", "*": ""},
    "upper lip": {"raise": "AU10", "curl": "AU10", "*": ""},
    "lower lip": {"lower": "AU16", "down": "AU16", "press": "AU28", "*": ""},
    "lip corner": {"raise": "AU12", "curl": "AU12", "down": "AU15", "lower": "AU15", "tighten": "AU14",
                   "dimple": "AU14", "stretch": "AU20", "*": ""},
    # MERR words AU20 (lip stretcher) as "Tense lips stretched" and "Anxiously stretched lips": tense lips are
    # either a stretcher or a tightener
    "lips": {"lower": "AU15 AU16", "tighten": "AU20 AU23 AU24", "press": "AU18 AU23 AU24 AU28", "stretch": "AU20",
             "open": "AU25", "curl": "AU10 AU12", "raise": "AU10 AU12 AU17", "down": "AU15", "show": "AU25", "*": ""},
    "mouth": {"open": "AU25 AU26 AU27", "stretch": "AU20 AU27", "down": "AU15", "raise": "AU12",
              "tighten": "AU23 AU24", "press": "AU23 AU24", "*": ""},
    "jaw": {"open": "AU26", "lower": "AU26", "down": "AU26", "clench": "AU31", "tighten": "AU31", "*": ""},
    "chin": {"raise": "AU17", "tighten": "AU17", "wrinkle": "AU17", "*": ""},
    "teeth": {"show": "AU10 AU12 AU25", "clench": "AU31", "*": ""},
}
# Whole words or fixed phrases that are movements by themselves: (regex, key, AU codes, stem that
# supports it when found anywhere in the clues). The fixed phrases are MERR clue wordings that the
# part+movement reading would get wrong ("head lifting wrinkles" is forehead wrinkles, AU01).
_FACE_WORDS = [
    (r"head[\s-]+lifting wrinkles?|forehead wrinkles?|wrinkled forehead", "forehead wrinkle", "AU01 AU02",
     r"head[\s-]+lifting|forehead"),
    (r"(?:hollow|indentation)s? (?:on the face )?when smiling|hollow smile", "dimple", "AU14",
     "dimpl|hollow|indentation"),
    (r"facial (?:tightness|tension)|tense face|tight face", "facial tightness", "AU04 AU07 AU23", "tight|tens"),
    (r"wide[\s-]+mouthed", "mouth open", "AU25 AU26 AU27", r"wide[\s-]+mouthed"),
    (r"wide[\s-]+eyed", "eye open", "AU05", r"wide[\s-]+eyed"),
    (r"(?:toothy |big |broad |wide )?(?:smil(?:e|es|ed|ing)|grin(?:s|ned|ning)?|beam(?:s|ed|ing))", "smile",
     "AU06 AU12 AU14", "smil|grin|beam"),  # AU14 too: MERR words the dimpler "Hollow on the face when smiling"
    (r"frown(?:s|ed|ing)?|scowl(?:s|ed|ing)?", "frown", "AU04", "frown|furrow|scowl"),
    (r"dimpl(?:e|es|ed|er|ers)", "dimple", "AU14", "dimpl"),
    (r"grimac(?:e|es|ed|ing)", "grimace", "AU04 AU06 AU07 AU09 AU10 AU20", "grimac"),
    (r"squint(?:s|ed|ing)?", "squint", "AU06 AU07 AU44", "squint"),
    (r"sneer(?:s|ed|ing)?", "sneer", "AU09 AU10", "sneer"),
    (r"pout(?:s|ed|ing)?", "pout", "AU15 AU17 AU18", "pout"),
    (r"blink(?:s|ed|ing)?", "blink", "AU45", "blink"),
    (r"wink(?:s|ed|ing)?", "wink", "AU46", "wink"),
]
_FACE_WORD_RE = [(re.compile(r"\b(?:" + rx + r")\b"), key, tuple(aus.split()), re.compile(stem))
                 for rx, key, aus, stem in _FACE_WORDS]
_STEM = {key: stem for _, key, _, stem in _FACE_WORD_RE}
# FER classes named by a caption ("the face looks happy"): the EMFACS prototype AUs of that emotion.
# Clue side only — in a generated text "a happy expression" is an inference, not a movement.
_FER_AUS = {"happy": "AU06 AU12", "sad": "AU01 AU04 AU15", "angry": "AU04 AU05 AU07 AU23",
            "fearful": "AU01 AU02 AU04 AU05 AU20 AU26", "fear": "AU01 AU02 AU04 AU05 AU20 AU26",
            "surprised": "AU01 AU02 AU05 AU26", "surprise": "AU01 AU02 AU05 AU26",
            "disgusted": "AU09 AU15 AU16", "disgust": "AU09 AU15 AU16"}

# ---------------------------------------------------------------------------------------------- tone
# Tone groups: synonym sets read from MERR's audio clues ("tone sounds flaming", "speaks in a tremulous
# tone", "does not speak with any of the emotions listed") and the adjectives its reference paragraphs
# use; plus the prosody words of emotune's captions (louder, higher pitch, faster, rougher voice...).
# A word may sit in several groups ("low" is a sad, a quiet or a deep voice); it is supported when any
# of its groups is in the clues.
TONE_GROUPS = {
    "neutral": "neutral normal natural calm flat steady even composed measured matter-of-fact monotone "
               "monotonous unemotional emotionless plain ordinary level relaxed straightforward objective "
               "normal-toned reassuring gentle",
    "positive": "positive cheerful happy joyful joyous excited enthusiastic upbeat lively bright pleasant "
                "animated playful warm friendly reassuring delighted elated gleeful amused lighthearted "
                "light-hearted energetic jovial merry optimistic hopeful affectionate teasing laughing "
                "excitement joy happiness enthusiasm delight glad",
    "negative": "negative sad low sorrowful dejected gloomy depressed heavy distraught heartbroken bitter "
                "bitterness melancholy melancholic mournful somber sombre disappointed despairing desperate "
                "helpless weary tired resigned choked tearful sobbing crying pained hurt sadness sorrow grief "
                "despair disappointment distress distressed unhappy upset frustrated frustration regretful "
                "pleading dissatisfied discontented displeased disapproving disapproval hopeless miserable "
                "grieving pessimistic",
    "angry": "angry anger furious irritated annoyed harsh aggressive flaming stern agitated impatient "
             "frustrated frustration hostile indignant heated fierce sharp forceful enraged rage fury "
             "irritation annoyance confrontational accusatory accusing scolding resentful resentment defiant "
             "threatening menacing bitter exasperated outraged",
    "contempt": "sarcastic sarcasm mocking disdainful disdain contemptuous contempt scornful scorn dismissive "
                "sneering condescending cold cynical skeptical sceptical disgusted disgust ironic derisive",
    "fearful": "fearful fear tremulous trembling trembles tremble shaky shaking quivering quavering nervous "
               "nervousness anxious anxiety worried worry uneasy startled scared afraid frightened panicked "
               "panicky panic terrified terror alarmed alarm apprehensive tense tension strained timid "
               "hesitant hesitation uncertain uncertainty unsure insecure concerned concern stammering "
               "stuttering distressed distress desperate",
    "surprised": "surprised surprise astonished astonishment astounded amazed amazement shocked shock startled "
                 "incredulous disbelieving disbelief stunned",
    "uncertain": "hesitant hesitation uncertain uncertainty unsure doubtful puzzled confused confusion "
                 "questioning tentative skeptical sceptical inquisitive curious",
    "loud": "loud louder booming raised shouting shouted shout shouts yelling yelled yell screaming "
            "screamed scream forceful powerful emphatic",
    "quiet": "quiet quieter soft softer hushed whispering whispered whisper whispers gentle low muted faint "
             "weak murmuring mumbling",
    "high_pitch": "high-pitched shrill squeaky",
    "low_pitch": "low-pitched low",  # not "deep": "tone conveys deep concern"
    "fast": "fast faster quick quicker rapid hurried rushed hasty fast-paced urgent urgency breathless brisk",
    "slow": "slow slower drawn-out deliberate leisurely",
    "rough": "rough rougher breathy breathier hoarse raspy husky gravelly strained croaky choked",
    "clear": "clear clearer crisp",
    "flat_intonation": "flat flatter monotone monotonous",
    "varied_intonation": "varied expressive animated melodic sing-song lilting",
}
_TONE = {}
for _g, _ws in TONE_GROUPS.items():
    for _w in _ws.split():
        _TONE.setdefault(_w, set()).add(_g)
# "higher/lower" are pitch words only next to "pitch" ("a higher pitch", "pitch is lower").
_PITCH = {"high": {"high_pitch"}, "higher": {"high_pitch"}, "low": {"low_pitch"}, "lower": {"low_pitch"},
          "deep": {"low_pitch"}, "deeper": {"low_pitch"}, "raised": {"high_pitch"}, "rising": {"high_pitch"}}
_TONE_NOUNS = {"tone", "tones", "voice", "voices", "intonation", "intonations", "pitch", "speech", "delivery"}
_SPEAK_VERBS = set("speak speaks spoke speaking talk talks talked talking say says said saying reply replies "
                   "replied respond responds responded answer answers answered ask asks asked".split())
_SOUND_VERBS = {"sound", "sounds", "sounded", "sounding"}
_COPULA = set("is are was were be been being sound sounds sounded sounding seem seems seemed appear appears "
              "appeared remain remains remained stay stays stayed become becomes became convey conveys "
              "conveyed express expresses expressed carry carries carried reflect reflects reflected filled "
              "full tinged laced".split())
_ADVERBS = set("also still very quite rather slightly somewhat more much far generally mostly largely clearly "
               "notably noticeably particularly especially overly extremely fairly relatively distinctly "
               "audibly increasingly".split())
_FUNCTION = set("a an of with to be sense hint touch bit little".split())
_NOT_ADVERBS = {"strongly", "lowly", "evenly", "highly", "deeply", "levelly", "plainly", "clearly", "lightly",
                "warmly", "coldly", "sharply", "heavily", "brightly", "weakly", "shortly"}  # degree/other senses
# Emotion nouns name a tone only after the noun ("tone of disdain", "tone conveys sadness", "fear in her
# voice"); before it they are a list of inferred emotions ("surprise, concern, and alarm and a negative tone").
_TONE_NOUNS_OF_EMOTION = set("excitement joy happiness enthusiasm delight sadness sorrow grief despair disappointment "
                             "distress frustration bitterness anger rage fury irritation annoyance resentment sarcasm "
                             "disdain contempt scorn disgust fear nervousness anxiety worry panic terror alarm tension "
                             "hesitation uncertainty concern surprise astonishment amazement shock disbelief confusion "
                             "urgency disapproval".split())
_POSSESSIVE = {"his", "her", "their", "the", "its", "a", "an"}
_VOICE_VERBS = set("shout shouts shouted shouting yell yells yelled yelling scream screams screamed screaming "
                   "whisper whispers whispered whispering".split())
_CONJ = {"and", "or", ",", "but", "yet", "/"}
_NEGATION = {"not", "no", "without", "lack", "lacks", "lacking", "never", "nor", "neither"}
# Clue wordings that say the voice carries no emotion: they support the neutral group only.
_NEUTRAL_CLUE = re.compile(r"not (?:speak|expressing|express)\w* (?:with )?any|without (?:any )?emotion|"
                           r"no (?:particular|obvious|clear|apparent) emotion|are close to", re.I)
_VOICE_CUE = re.compile(r"\b(speak\w*|spoke|voice\w*|tone\w*|intonation|pitch|loud\w*|quiet\w*|sound\w*|"
                        r"audio|prosody|pace)\b", re.I)

_QUOTE_RE = re.compile(r'"([^"]*)"|“([^”]*)”')
_TOKEN_RE = re.compile(r"[a-z]+(?:[-'][a-z]+)*|[,.;:!?()/]")


def _tone_groups(word: str, noun: str | None = None) -> set[str]:
    """The tone groups of one word (an -ly adverb counts as its adjective: angrily -> angry)."""
    if noun == "pitch" and word in _PITCH:
        return _PITCH[word]
    if word in _TONE:
        return _TONE[word]
    if word in _NOT_ADVERBS:
        return set()
    if word.endswith("ily") and word[:-3] + "y" in _TONE:
        return _TONE[word[:-3] + "y"]
    if word.endswith("ly") and word[:-2] in _TONE:
        return _TONE[word[:-2]]
    return set()


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    chars = list(text)
    for a, b in spans:
        chars[a:b] = " " * (b - a)
    return "".join(chars)


def _quotes(text: str) -> tuple[list[Assertion], str]:
    """The quotes of `text` and the text with them blanked (quoted words assert nothing else)."""
    out, spans = [], []
    for m in _QUOTE_RE.finditer(text):
        inner = m.group(1) if m.group(1) is not None else m.group(2)
        key = normalise(inner)
        spans.append(m.span())
        if key:
            out.append(Assertion("quote", inner.strip(), key))
    return out, _mask(text, spans)


def normalise(text: str) -> str:
    """Lower case, punctuation dropped, spaces collapsed (how quotes are compared)."""
    text = re.sub(r"(?<=\d)[,.](?=\d{3}\b)", "", text.lower())  # "50,000" is "50000"
    return " ".join(re.sub(r"[^\w\s]|_", " ", text.replace("'", "").replace("’", "")).split())


def _au(text: str) -> tuple[list[Assertion], str]:
    out, spans = [], []
    for m in _AU_CODE_RE.finditer(text):
        out.append(Assertion("au", m.group(0), f"AU{int(m.group(1)):02d}", (f"AU{int(m.group(1)):02d}",)))
        spans.append(m.span())
    for m in _FACS_RE.finditer(text):
        code = _FACS_NAME[re.sub(r"[\s-]+", " ", m.group(1).lower())]
        out.append(Assertion("au", m.group(0), code, (code,)))
        spans.append(m.span())
    return out, _mask(text, spans)


def _face(text: str) -> list[Assertion]:
    """Facial movements in lower-cased text whose quotes and AU names are already blanked."""
    out = []
    for rx, key, aus, _ in _FACE_WORD_RE:  # fixed phrases first, each blanked once read
        for m in rx.finditer(text):
            out.append(Assertion("face", m.group(0), key, aus))
        text = rx.sub(lambda m: " " * len(m.group(0)), text)
    toks = [(m.group(0), m.start(), m.end()) for m in _TOKEN_RE.finditer(text)]
    starts = {s: i for i, (_, s, _) in enumerate(toks)}
    for m in _PART_RE.finditer(text):
        part = _PARTS[int(next(k for k, v in m.groupdict().items() if v)[1:])][1]
        first = starts.get(m.start())
        last = next((i for i, (_, s, e) in enumerate(toks) if e == m.end()), None)
        if first is None or last is None:
            continue
        found = []
        for step, begin in ((-1, first - 1), (1, last + 1)):  # the movement word before, then after
            i, n = begin, 0
            while 0 <= i < len(toks) and n < 4 and toks[i][0] in _FACE_FILL:
                i, n = i + step, n + 1
            if 0 <= i < len(toks) and toks[i][0] in _MOVE:
                found.append(i)
        for i in found:
            move = _MOVE[toks[i][0]]
            table = _FACE_AUS[part]
            aus = tuple((table.get(move) if move in table else table["*"]).split())
            if not aus:  # a part beside a word that is no movement of it ("visible cheek") asserts nothing
                continue
            a, b = min(toks[i][1], m.start()), max(toks[i][2], m.end())
            out.append(Assertion("face", text[a:b], f"{part} {move}", aus))
    return out


def _tone(text: str) -> list[Assertion]:
    """Tone assertions in lower-cased text whose quotes are blanked; each tone word is read once."""
    spans = [m.span() for m in _TOKEN_RE.finditer(text)]
    toks = [text[a:b] for a, b in spans]
    out: list[Assertion] = []
    used: set[int] = set()

    def chain(i: int, step: int, noun: str | None) -> list[int]:
        """Tone words in the adjective chain from token i ("fearful and bitter", "slightly more angry").
        Function words ("a sense of") may only lead up to the first tone word; a negation near the
        chain ("not cheerful", "without an angry tone") cancels it."""
        found = []
        while 0 <= i < len(toks):
            t = toks[i]
            if t in _NEGATION:
                return []
            if _tone_groups(t, noun) and not (step < 0 and t in _TONE_NOUNS_OF_EMOTION):
                found.append(i)
            elif not (t in _ADVERBS or (t in _FUNCTION and not found) or (t in _CONJ and found)):
                break
            i += step
        if step < 0 and any(0 <= k < len(toks) and toks[k] in _NEGATION for k in (i, i - 1, i - 2)):
            return []
        return found

    def add(idx: list[int], noun: str | None, at: int) -> None:
        """One assertion per tone word, its span running to the noun or verb it hangs on (token `at`)."""
        for k in idx:
            if k not in used:
                used.add(k)
                a, b = min(spans[k][0], spans[at][0]), max(spans[k][1], spans[at][1])
                out.append(Assertion("tone", text[a:b], "|".join(sorted(_tone_groups(toks[k], noun)))))

    for i, t in enumerate(toks):
        if t in _TONE_NOUNS:
            # before: "a fearful and bitter tone", "a higher pitch"; "sadness in her voice"
            add(chain(i - 1, -1, t), t, i)
            if i >= 3 and toks[i - 2] == "in" and toks[i - 1] in _POSSESSIVE:
                add(chain(i - 3, -1, t), t, i)
            # after: "tone (and intonation) are also negative", "voice trembling", "tone of disdain"
            j = i + 1
            while j + 1 < len(toks):
                if toks[j] in {"and", "or", "of"} and toks[j + 1] in _TONE_NOUNS:
                    j += 2
                elif toks[j] == "of" and toks[j + 1] in _POSSESSIVE and toks[j + 2:j + 3] and \
                        toks[j + 2] in _TONE_NOUNS:
                    j += 3
                else:
                    break
            while j < len(toks) and (toks[j] in _COPULA or toks[j] == "of"):
                j += 1
            if j < len(toks) and toks[j] not in _CONJ:
                add(chain(j, 1, t), t, i)
        elif t in _SPEAK_VERBS or t in _SOUND_VERBS:
            # "speaks calmly", "speak more loudly", "sounds startled" (not "sounds like")
            idx = chain(i + 1, 1, None)
            if t in _SPEAK_VERBS:
                idx = [k for k in idx if toks[k].endswith("ly")]  # "says nothing sad" is not a tone
            add(idx, None, i)
        elif t in _VOICE_VERBS:
            add([i], None, i)
    return out


def assertions(text: str) -> list[Assertion]:
    """Everything `text` asserts of the four kinds, in kind order (quote, au, face, tone)."""
    quotes, rest = _quotes(text or "")
    aus, rest = _au(rest)
    rest = rest.lower()
    return quotes + aus + _face(rest) + _tone(rest)


def _voice_part(clues: str) -> str:
    """The part of the clues about the voice: MERR's "Voice:" section, else the sentences with a voice cue."""
    _, bare = _quotes(clues)
    m = re.search(r"\bVoice:\s*(.*?)(?=\s+(?:Words|Face|Action units[^:]*|Text|Transcript):|$)", bare, re.S)
    if m:
        return m.group(1)
    sentences = re.split(r"(?<=[.!?])\s+", bare)
    return " ".join(s for s in sentences if _VOICE_CUE.search(s))


class Clues:
    """One sample's clue text, parsed once: the AU codes, face keys, tone groups and normalised words it holds."""

    def __init__(self, clues: str):
        self.text = clues or ""
        self.lower = self.text.lower()
        self.norm = " " + normalise(self.text) + " "
        found = assertions(self.text)
        self.aus = {c for a in found if a.kind in ("au", "face") for c in a.aus}
        self.face_keys = {a.key for a in found if a.kind == "face"}
        _, bare = _quotes(self.text)
        for sentence in re.split(r"(?<=[.!?])\s+", bare.lower()):  # a caption naming the face's FER class
            if re.search(r"\b(face|facial|expression)\b", sentence):
                for w in re.findall(r"[a-z]+", sentence):
                    self.aus |= set(_FER_AUS.get(w, "").split())
        voice = _voice_part(self.text)
        vl = voice.lower()
        self.tones: set[str] = set()
        if _NEUTRAL_CLUE.search(voice):
            self.tones.add("neutral")
        else:  # every tone word of the voice part counts, whatever its syntax ("this person is angry in the audio")
            for w in _TOKEN_RE.findall(vl):
                self.tones |= _tone_groups(w)
            for a in _tone(vl):  # "a higher pitch"
                self.tones |= set(a.key.split("|"))

    def supports(self, a: Assertion) -> bool:
        if a.kind == "au":
            return a.key in self.aus
        if a.kind == "face":
            if set(a.aus) & self.aus or a.key in self.face_keys:
                return True
            stem = _STEM.get(a.key)
            return bool(stem and stem.search(self.lower))
        if a.kind == "tone":
            return bool(set(a.key.split("|")) & self.tones)
        if a.kind == "quote":
            return f" {a.key} " in self.norm
        raise ValueError(f"unknown assertion kind {a.kind!r}")


def check(text: str, clues: str | Clues) -> dict:
    """{"supported": [Assertion], "unsupported": [Assertion]} for one generated text against its clues."""
    c = clues if isinstance(clues, Clues) else Clues(clues)
    found = assertions(text)
    return {"supported": [a for a in found if c.supports(a)], "unsupported": [a for a in found if not c.supports(a)]}


def _rate(unsupported: int, total: int) -> float | None:
    return unsupported / total if total else None


def faithfulness(texts: list[str], clues: list[str], examples: int = 20) -> dict:
    """The hallucination rate of `texts` against their `clues` (paired by position), by kind, with examples.

    {"assertions": N, "unsupported": M, "hallucination_rate": M/N or None, "by_kind": {kind: {"assertions",
    "unsupported", "rate"}}, "samples_with_any": samples with an unsupported assertion, "per_sample":
    [{"assertions": n, "unsupported": [[kind, text], ...]}], "examples": [{index, unsupported, text}]}
    """
    if len(texts) != len(clues):
        raise ValueError(f"{len(texts)} texts but {len(clues)} clue texts")
    by_kind = {k: {"assertions": 0, "unsupported": 0} for k in KINDS}
    per_sample, shown = [], []
    for i, (text, clue) in enumerate(zip(texts, clues)):
        r = check(text, clue)
        for a in r["supported"] + r["unsupported"]:
            by_kind[a.kind]["assertions"] += 1
        for a in r["unsupported"]:
            by_kind[a.kind]["unsupported"] += 1
        bad = [[a.kind, a.text] for a in r["unsupported"]]
        per_sample.append({"assertions": len(r["supported"]) + len(r["unsupported"]), "unsupported": bad})
        if bad and len(shown) < examples:
            shown.append({"index": i, "unsupported": bad, "text": text})
    for v in by_kind.values():
        v["rate"] = _rate(v["unsupported"], v["assertions"])
    n = sum(v["assertions"] for v in by_kind.values())
    m = sum(v["unsupported"] for v in by_kind.values())
    return {"assertions": n, "unsupported": m, "hallucination_rate": _rate(m, n), "by_kind": by_kind,
            "samples_with_any": sum(1 for s in per_sample if s["unsupported"]), "per_sample": per_sample,
            "examples": shown}
