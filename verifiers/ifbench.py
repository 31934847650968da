"""IFBench: AllenAI's out-of-distribution verifiable constraints, a second family beside IFEval's.

IFBench (github allenai/IFBench) poses 58 new constraints ("use at least N unique
words", "nest parentheses 5 levels deep", "every 3rd word in Japanese"...) to test
whether instruction following generalises beyond IFEval's 25. Its ids, arguments
and wording are kept, so IFBench-format rows load unchanged; IFBench rows may also
use IFEval's ids, so :data:`ALL_CONSTRAINTS` holds both families.

56 of the 58 are implemented, in :mod:`rlvr.verifiers.ifbench_rules` and
:mod:`rlvr.verifiers.ifbench_format` (``format:emoji`` and
``words:odd_even_syllables`` use the ``emoji`` and ``syllapy`` packages, as the
reference does). Not implemented, because each needs NLTK data that no package
here ships: ``ratio:stop_words`` (NLTK's stop-word list) and ``words:start_verb``
(NLTK's part-of-speech tagger). An unknown id makes the verdict unscorable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlvr.verifiers import ifbench_format as F
from rlvr.verifiers import ifbench_rules as R
from rlvr.verifiers.instructions import CONSTRAINTS, Constraint, InstructionFollowing

__all__ = ["ALL_CONSTRAINTS", "IFBENCH_CONSTRAINTS", "MISSING", "IFBenchFollowing"]

MISSING = ("ratio:stop_words", "words:start_verb")


def _range(args: dict[str, Any]) -> None:
    if args["min_words"] > args["max_words"]:
        raise ValueError(f"min_words must be <= max_words, got {args['min_words']} > {args['max_words']}")


def _span(args: dict[str, Any]) -> None:
    if not 0 <= args["n_start"] <= args["n_end"] < len(args["prompt_to_repeat"]):
        raise ValueError(
            f"n_start and n_end must satisfy 0 <= n_start <= n_end < len(prompt_to_repeat), "
            f"got {args['n_start']}, {args['n_end']} for {len(args['prompt_to_repeat'])} characters"
        )


def _mcq(count: int, options: int) -> str:
    stems = ["Who?", "Who is?", "Who is he?", "Who is he now?"]
    return "\n".join(
        f"Question {i + 1}: {stem}\n" + "\n".join(f"{c}) option" for c in "ABCDE"[:options])
        for i, stem in enumerate(stems[:count])
    )


_ALPHABET = " ".join(f"{c.upper()}ello goes." for c in "abcdefghijklmnopqrstuvwxyz")
_COUNTRIES = "\n".join(["Zimbabwe", *(f"Country {n}" for n in range(99, 48, -1))])
_CITY_HEAD = "ID,Country,City,Year,Count\n"
_CITY_ROWS = "".join(f"{i},Peru,Lima,2020,{i}\n" for i in range(1, 8))
_SPECIAL = "ProductID,Category,Brand,Price,Stock\n" + "".join(f"{i},Toys,Acme,9.99,5\n" for i in range(1, 14))
_QUOTES_HEAD = '"StudentID"\t"Subject"\t"Grade"\t"Semester"\t"Score"\n'
_QUOTED_ROWS = "".join(f'"{i}"\t"Math"\t"A"\t"Fall"\t"90"\n' for i in range(1, 4))
_KEYWORDS = {"keyword1": "alpha", "keyword2": "bravo", "keyword3": "charlie", "keyword4": "delta", "keyword5": "echo"}
_KEYWORD_TEXT = "alpha " + "bravo " * 2 + "charlie " * 3 + "delta " * 5
_PROMPT = "Describe the sea at night."
_KW = ["keyword1", "keyword2", "keyword3", "keyword4", "keyword5"]

# id: (rule, hardened rule or None, instruction, parameters, example arguments, passing, failing)
_TABLE: dict[str, tuple[Any, Any, str, dict[str, str], dict[str, Any], str, str]] = {
    "count:word_count_range": (R.word_count_range, None, "The response must contain between {min_words} and {max_words} words.",
        {"min_words": "count", "max_words": "count"}, {"min_words": 3, "max_words": 5}, "The sea is calm.", "Calm."),
    "count:unique_word_count": (R.unique_word_count, None, "Use at least {N} unique words in the response.",
        {"N": "count"}, {"N": 4}, "The sea is calm.", "Sea sea sea sea."),
    "ratio:sentence_type": (R.sentence_type, R.hardened_sentence_type,
        "Maintain a 2:1 ratio of declarative to interrogative sentences.", {}, {},
        "It rains. It pours. Why?", "It rains. Why? How?"),
    "ratio:sentence_balance": (R.sentence_balance, R.hardened_sentence_balance,
        "Ensure that the ratio of sentence types (declarative, interrogative, exclamatory) is balanced.", {}, {},
        "It rains. Why? Wow!", "It rains. It pours. Why?"),
    "count:conjunctions": (R.conjunctions, R.hardened_conjunctions,
        "Use at least {small_n} different coordinating conjunctions in the response.", {"small_n": "count"},
        {"small_n": 2}, "Calm and quiet but cold.", "Calm and quiet and cold."),
    "count:person_names": (R.person_names, None,
        "Mention at least {N} different person names in the response, from this list of person names: "
        + ", ".join(R.PERSON_NAMES) + ".", {"N": "count"}, {"N": 2}, "Emma met Liam.", "Emma met a friend."),
    "ratio:overlap": (R.overlap, None, "Maintain a trigram overlap of {percentage}% (±2%) with the provided reference text.",
        {"reference_text": "text", "percentage": "percentage"}, {"reference_text": "the sea is calm", "percentage": 100},
        "the sea is calm", "a storm rages"),
    "count:numbers": (R.numbers, None, "Include exactly {N} numbers in the response.", {"N": "count"}, {"N": 2},
        "Buy 3 apples and 12 pears.", "Buy 3 apples."),
    "words:alphabet": (R.alphabet, None,
        "Each word must start with the next letter of the alphabet, looping back to 'A' after 'Z'.", {}, {},
        "Ants bite cats daily.", "Ants bite dogs."),
    "words:vowel": (R.vowel, None, "Write a paragraph using words that contain only three types of vowels.", {}, {},
        "Cats can nap at dawn.", "Quiet evenings outside are lovely."),
    "words:consonants": (R.consonants, None,
        "Ensure each word in your response has at least one consonant cluster (two or more consonants together).",
        {}, {}, "Strong brick walls stand.", "A strong wall."),
    "sentence:alliteration_increment": (R.alliteration_increment, None,
        "Each sentence must have a longer sequence of consecutive alliterative words than the previous one.", {}, {},
        "Big dog. Silly sad sun.", "Silly sad sun. Big dog."),
    "words:palindrome": (R.palindrome, None,
        "Include at least 10 single-word palindromes, each at least 5 characters long.", {}, {},
        "level radar civic kayak refer madam rotor stats tenet sagas", "level radar civic"),
    "count:punctuation": (F.punctuation_cover, None,
        "Use every standard punctuation mark at least once, including semicolons, colons, and the interrobang (?!).",
        {}, {}, "Wait?! Why? Yes, go; now: run. Stop!", "Wait?! Yes, go. Stop!"),
    "format:parentheses": (F.parentheses, None, "Nest parentheses (and [brackets {and braces}]) at least 5 levels deep.",
        {}, {}, "(a [b {c (d [e])}])", "(a [b {c}])"),
    "format:quotes": (F.quotes, None,
        "Include quotes within quotes within quotes, at least 3 levels deep, alternating between double quotes and "
        "single quotes.", {}, {}, "\"She said 'he said \"go\" today' loudly\"", "\"She said 'go' loudly\""),
    "words:prime_lengths": (R.prime_lengths, None, "Use only words with lengths that are prime numbers.", {}, {},
        "We are the big cat.", "We are four."),
    "format:options": (F.options, None, "Answer with one of the following options: {options}. Do not give any explanation.",
        {"options": "text"}, {"options": "yes/no/maybe"}, "Yes.", "Yes, I think so."),
    "format:newline": (F.newline, None, "Write each word on a new line.", {}, {}, "One\nword\nper\nline.",
        "Two words\nhere."),
    "ratio:sentence_words": (F.sentence_words, F.hardened_sentence_words,
        "Respond with three sentences, all containing the same number of characters but using all different words.",
        {}, {}, "Cats nap. Dogs run. Owls fly.", "Cats nap. Dogs run."),
    "count:words_japanese": (R.words_japanese, None, "Every {N}th word of your response must be in Japanese.",
        {"N": "positive"}, {"N": 2}, "I 猫 like 犬", "I like cats"),
    "words:repeats": (R.repeats, None, "The response should not repeat any word more than {small_n} times.",
        {"small_n": "count"}, {"small_n": 2}, "The sea, the sky.", "The sea, the sky, the sun."),
    "sentence:keyword": (R.sentence_keyword, None, 'The response must include keyword "{word}" in the {N}-th sentence.',
        {"word": "text", "N": "positive"}, {"word": "moon", "N": 2}, "Night fell. The moon rose.",
        "The moon rose. Night fell."),
    "count:pronouns": (R.pronouns, None, "The response should include at least {N} pronouns.", {"N": "count"}, {"N": 3},
        "She told him that it was late.", "The ship sailed at dawn."),
    "words:last_first": (R.last_first, R.hardened_last_first,
        "The last word of each sentence must become the first word of the next sentence.", {}, {},
        "The sea was calm. Calm was the night.", "The sea was calm. The night was dark."),
    "words:paragraph_last_first": (R.paragraph_last_first, None,
        "Each paragraph must end with the same word it started with, separate paragraphs with a newline.", {}, {},
        "sea and sky and sea\nmoon over moon", "sea and sky"),
    "sentence:increment": (R.increment, None, "Each sentence must contain exactly {small_n} more words than the previous one.",
        {"small_n": "count"}, {"small_n": 1}, "Sea calm. The sea rests. The sea rests now.",
        "Sea calm. The sea rests now."),
    "words:no_consecutive": (R.no_consecutive, None, "No two consecutive words can share the same first letter.", {}, {},
        "The old boat rests.", "The tall boat."),
    "format:line_indent": (F.line_indent, None, "Create stairs by incrementally indenting each new line.", {}, {},
        "a\n b\n  c", "a\nb"),
    "format:quote_unquote": (F.quote_unquote, F.hardened_quote_unquote,
        "Every quoted phrase must be followed by an unquoted explanation.", {}, {},
        '"Carpe diem" means seize the day.', '"Carpe diem" "seize the day"'),
    "format:list": (F.special_list, None, "Answer with a list of items, instead of bullet points use {sep}.",
        {"sep": "text"}, {"sep": "SEPARATOR"}, "SEPARATOR sand SEPARATOR salt", "SEPARATOR sand"),
    "format:thesis": (F.thesis, None,
        "Each section must begin with a thesis statement in italics, use HTML to indicate the italics.", {}, {},
        "<i>The sea matters.</i> It feeds us.", "The sea matters. It feeds us."),
    "format:sub-bullets": (F.sub_bullets, F.hardened_sub_bullets,
        "Your response must include bullet points denoted by * and at least one sub-bullet point denoted by - for "
        "each bullet point.", {}, {}, "* sea\n - waves\n* sky\n - clouds", "* sea\n* sky"),
    "format:no_bullets_bullets": (F.no_bullets_bullets, None,
        "Your answer must contain at least two sentences ending in a period followed by at least two bullet points "
        "denoted by *.", {}, {}, "The sea is calm. Boats rest.\n* sand\n* salt", "* sand\n* salt"),
    "custom:multiples": (F.multiples, None, "Count from 10 to 50 but only print multiples of 7.", {}, {},
        "14, 21, 28, 35, 42, 49", "7, 14, 21, 28, 35, 42, 49"),
    "custom:mcq_count_length": (F.mcq_count_length, None,
        "Generate 4 multiple choice questions with 5 options each about '20th century art history'. Each question "
        'should start with the label "Question". The questions should get progressively longer. Do not provide an '
        "explanation.", {}, {}, _mcq(4, 5), _mcq(4, 4)),
    "custom:reverse_newline": (F.reverse_newline, None,
        "List the countries of Africa in reverse alphabetical order, each on a new line.", {}, {}, _COUNTRIES,
        "Zambia\nZimbabwe"),
    "custom:word_reverse": (F.word_reverse, None,
        "What animal is the national symbol of the US? Respond to this query, but make your sentence in reverse "
        "order of what it should be, per word.", {}, {}, "eagle bald the is symbol national the",
        "The bald eagle is the national symbol."),
    "custom:character_reverse": (F.character_reverse, None,
        "What animal is the national symbol of the US? Respond to this query, but make your sentence in reverse "
        "order of what it should be, per letter.", {}, {}, "elgae dlab", "bald eagle"),
    "custom:sentence_alphabet": (F.sentence_alphabet, None,
        "Tell me a 26-sentence story where each sentence's first word starts with the letters of the alphabet in "
        "order.", {}, {}, _ALPHABET, _ALPHABET.rsplit(" Z", 1)[0]),
    "custom:european_capitals_sort": (F.european_capitals_sort, None,
        "Give me the names of all capital cities of european countries whose latitude is higher than than 45 "
        "degrees? List the capital cities without country names, separated by commas, sorted by latitude, from "
        "highest to lowest.", {}, {}, ", ".join(F.NORTHERN_CAPITALS), ", ".join(F.NORTHERN_CAPITALS[::-1])),
    "custom:csv_city": (F.csv_city, None,
        'Generate CSV data: The column names are ["ID", "Country", "City", "Year", "Count"], the data should be '
        "comma delimited. Please generate 7 rows.", {}, {}, _CITY_HEAD + _CITY_ROWS, _CITY_HEAD),
    "custom:csv_special_character": (F.csv_special_character, None,
        'Generate CSV data: The column names are ["ProductID", "Category", "Brand", "Price", "Stock"], the data '
        "should be comma delimited. Please generate 14 rows. Add one field which contains a special character and "
        "enclose it in double quotes.", {}, {}, _SPECIAL + '14,Toys,"Acme & Co",9.99,5', _SPECIAL + "14,Toys,Acme,9.99,5"),
    "custom:csv_quotes": (F.csv_quotes, None,
        'Generate CSV data: The column names are ["StudentID", "Subject", "Grade", "Semester", "Score"], the data '
        "should be tab delimited. Please generate 3 rows and enclose each single field in double quotes.", {}, {},
        _QUOTES_HEAD + _QUOTED_ROWS, _QUOTES_HEAD + _QUOTED_ROWS.replace('"', "")),
    "custom:date_format_list": (F.date_format_list, None,
        "List the start dates of all the battles Napoleon fought separated by commas, use the following date "
        "format: YYYY-MM-DD. Do not provide an explanation.", {}, {}, "1796-04-12, 1805-12-02", "April 12, 1796"),
    "count:keywords_multiple": (R.keywords_multiple, None,
        "Include keyword {keyword1} once in your response, keyword {keyword2} twice in your response, keyword "
        "{keyword3} three times in your response, keyword {keyword4} five times in your response, and keyword "
        "{keyword5} seven times in your response.", dict.fromkeys(_KW, "text"), _KEYWORDS,
        _KEYWORD_TEXT + "echo " * 7, _KEYWORD_TEXT + "echo " * 6),
    "words:keywords_specific_position": (R.keywords_specific_position, None,
        "Include keyword {keyword} in the {n}-th sentence, as the {m}-th word of that sentence.",
        {"keyword": "text", "n": "positive", "m": "positive"}, {"keyword": "moon", "n": 2, "m": 2},
        "Night fell. The moon rose.", "Night fell. Moon rose."),
    "words:words_position": (F.words_position, None,
        "The second word in your response and the second to last word in your response should be the word "
        "{keyword}.", {"keyword": "text"}, {"keyword": "sea"}, "The sea is calm by the sea today.", "The sea is calm."),
    "repeat:repeat_change": (F.repeat_change, None,
        "Repeat the request, but change the first word of the repeated request, (do not say anything before "
        "repeating the request; the request you need to repeat does not include this sentence) and do not answer "
        "the actual request!", {"prompt_to_repeat": "text"}, {"prompt_to_repeat": _PROMPT},
        "Explain the sea at night.", _PROMPT),
    "repeat:repeat_simple": (F.repeat_simple, None, F.REPEAT_SIMPLE, {}, {}, F.REPEAT_SIMPLE,
        "Sure! " + F.REPEAT_SIMPLE),
    "repeat:repeat_span": (F.repeat_span, None,
        "Copy the span of words that lies between (and including) index {n_start} and {n_end}, the indices are "
        "character indices!", {"prompt_to_repeat": "text", "n_start": "count", "n_end": "count"},
        {"prompt_to_repeat": _PROMPT, "n_start": 9, "n_end": 15}, "the sea", "the sea at night"),
    "format:title_case": (F.title_case, None,
        "Write the entire response in title case (capitalize the first letter of every major word).", {}, {},
        "The Sea At Night", "The sea at night"),
    "format:output_template": (F.output_template, None,
        "Use this exact template for your response: My Answer: [answer] My Conclusion: [conclusion] Future "
        "Outlook: [outlook]", {}, {}, "My Answer: yes My Conclusion: no Future Outlook: calm", "My Answer: yes"),
    "format:no_whitespace": (F.no_whitespace, None, "The output should not contain any whitespace.", {}, {},
        "calm-sea", "calm sea"),
    "format:emoji": (R.emoji_sentences, None, "Please use an emoji at the end of every sentence.", {}, {},
        "The sea is calm 🌊. Boats rest ⛵.", "The sea is calm. Boats rest ⛵."),
    "words:odd_even_syllables": (R.odd_even_syllables, None,
        "Alternate between words with odd and even numbers of syllables.", {}, {}, "Sea water, sea water.",
        "Sea sea water."),
}  # fmt: skip
_VALIDATORS = {"count:word_count_range": _range, "repeat:repeat_span": _span}

IFBENCH_CONSTRAINTS: dict[str, Constraint] = {
    cid: Constraint(rule, instruction, params, kwargs, passing, failing, hardened, _VALIDATORS.get(cid))
    for cid, (rule, hardened, instruction, params, kwargs, passing, failing) in _TABLE.items()
}
ALL_CONSTRAINTS: dict[str, Constraint] = {**CONSTRAINTS, **IFBENCH_CONSTRAINTS}


class IFBenchFollowing(InstructionFollowing):
    """Score a completion against IFBench's constraints (and IFEval's, which IFBench rows may use).

    Same arguments, modes and details as :class:`~rlvr.verifiers.instructions.InstructionFollowing`;
    ``rules="ifeval"`` means the reference checkers' rules (IFBench's for its own ids).
    """

    name = "ifbench"

    def table(self) -> Mapping[str, Constraint]:
        """IFBench's 56 implemented constraints plus IFEval's 25."""
        return ALL_CONSTRAINTS
