"""The table of IFEval's constraints: rule names, wording, parameters and examples.

One row per IFEval id: ``(rule, hardened rule or "", instruction template,
parameters, example arguments, passing example, failing example)``. Rule names
are functions of :mod:`rlvr.verifiers.instructions_rules`. The wording follows
IFEval's instruction descriptions; each example passes (or fails) under both
rule sets, which the tests check.
"""

from __future__ import annotations

from typing import Any

_ENGLISH = "the tide comes in slowly and the boats rest in the harbor while the gulls call above the water."

CONSTRAINT_TABLE: dict[str, tuple[str, str, str, dict[str, str], dict[str, Any], str, str]] = {
    "length_constraints:number_words": (
        "number_words", "", "Answer with {relation} {num_words} words.",
        {"num_words": "count", "relation": "relation"}, {"num_words": 5, "relation": "less than"},
        "Tides turn; gulls cry.", "The tide turns slowly and the gulls cry.",
    ),
    "length_constraints:number_sentences": (
        "number_sentences", "", "Your response should contain {relation} {num_sentences} sentences.",
        {"num_sentences": "count", "relation": "relation"}, {"num_sentences": 2, "relation": "at least"},
        "The sea is calm. Boats rest.", "The sea is calm.",
    ),
    "length_constraints:number_paragraphs": (
        "number_paragraphs", "hardened_number_paragraphs",
        "There should be {num_paragraphs} paragraphs. Paragraphs are separated with the markdown divider: ***",
        {"num_paragraphs": "count"}, {"num_paragraphs": 2},
        "First part.\n***\nSecond part.", "First part.\n\nSecond part.",
    ),
    "length_constraints:nth_paragraph_first_word": (
        "nth_paragraph_first_word", "",
        "There should be {num_paragraphs} paragraphs. Paragraphs and only paragraphs are separated with each "
        "other by two new lines as if it was '\\n\\n' in python. Paragraph {nth_paragraph} must start with "
        "word {first_word}.",
        {"num_paragraphs": "positive", "nth_paragraph": "positive", "first_word": "text"},
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"},
        "The tide rose.\n\nThen it fell.", "The tide rose.\nThen it fell.",
    ),
    "keywords:existence": (
        "existence", "hardened_existence", "Include keywords {keywords} in the response.",
        {"keywords": "words"}, {"keywords": ["harbor", "lantern"]},
        "A lantern glows by the harbor.", "A lantern glows by the sea.",
    ),
    "keywords:forbidden_words": (
        "forbidden_words", "", "Do not include keywords {forbidden_words} in the response.",
        {"forbidden_words": "words"}, {"forbidden_words": ["blue"]},
        "The sky is grey over the bluebells.", "The sky is Blue.",
    ),
    "keywords:frequency": (
        "frequency", "hardened_frequency",
        "In your response, the word {keyword} should appear {relation} {frequency} times.",
        {"keyword": "text", "frequency": "count", "relation": "relation"},
        {"keyword": "wave", "frequency": 2, "relation": "at least"}, "Wave after wave.", "One wave, then a tide.",
    ),
    "keywords:letter_frequency": (
        "letter_frequency", "", "In your response, the letter {letter} should appear {let_relation} {let_frequency} times.",
        {"letter": "letter", "let_frequency": "count", "let_relation": "relation"},
        {"letter": "z", "let_frequency": 2, "let_relation": "at least"}, "Zany zebras.", "A quiet zebra.",
    ),
    "language:response_language": (
        "response_language", "hardened_response_language",
        "Your ENTIRE response should be in {language_name} language, no other language is allowed.",
        {"language": "language"}, {"language": "de"},
        "Das Meer ist heute ruhig und die Boote liegen still im Hafen.",
        "The sea is calm today and the boats rest quietly in the harbor.",
    ),
    "change_case:english_lowercase": (
        "english_lowercase", "hardened_english_lowercase",
        "Your entire response should be in English, and in all lowercase letters. No capital letters are allowed.",
        {}, {}, _ENGLISH, _ENGLISH.capitalize(),
    ),
    "change_case:english_capital": (
        "english_capital", "hardened_english_capital",
        "Your entire response should be in English, and in all capital letters.",
        {}, {}, _ENGLISH.upper(), _ENGLISH.upper().replace("HARBOR", "harbor"),
    ),
    "change_case:capital_word_frequency": (
        "capital_word_frequency", "",
        "In your response, words with all capital letters should appear {capital_relation} {capital_frequency} times.",
        {"capital_frequency": "count", "capital_relation": "relation"},
        {"capital_frequency": 2, "capital_relation": "at least"},
        "The SEA is CALM today.", "The Sea is calm today.",
    ),
    "punctuation:no_comma": (
        "no_comma", "hardened_no_comma", "In your entire response, refrain from the use of any commas.",
        {}, {}, "Calm seas and clear skies.", "Calm seas, clear skies.",
    ),
    "detectable_format:number_bullet_lists": (
        "number_bullet_lists", "hardened_number_bullet_lists",
        "Your answer must contain exactly {num_bullets} bullet points. Use the markdown bullet points such as:\n"
        "* This is point 1. \n* This is point 2",
        {"num_bullets": "count"}, {"num_bullets": 2}, "* sand\n* salt", "* sand\n* salt\n- sun",
    ),
    "detectable_format:number_highlighted_sections": (
        "number_highlighted_sections", "",
        "Highlight at least {num_highlights} sections in your answer with markdown, i.e. *highlighted section*.",
        {"num_highlights": "count"}, {"num_highlights": 2}, "The *tide* and the *moon*.", "The *tide* and the moon.",
    ),
    "detectable_format:multiple_sections": (
        "multiple_sections", "",
        "Your response must have {num_sections} sections. Mark the beginning of each section with "
        "{section_spliter} X, such as:\n{section_spliter} 1\n[content of section 1]\n{section_spliter} 2\n"
        "[content of section 2]",
        {"section_spliter": "text", "num_sections": "count"}, {"section_spliter": "Section", "num_sections": 2},
        "Section 1\nThe tide.\nSection 2\nThe moon.", "Section 1\nThe tide and the moon.",
    ),
    "detectable_format:title": (
        "title", "", "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.",
        {}, {}, "<<Sea Song>>\nWaves.", "Sea Song\nWaves.",
    ),
    "detectable_format:json_format": (
        "json_format", "hardened_json_format",
        "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.",
        {"schema_keys": "keys?"}, {}, '```json\n{"sea": "calm"}\n```', "sea: calm",
    ),
    "detectable_format:constrained_response": (
        "constrained_response", "hardened_constrained_response",
        "Answer with one of the following options: ('My answer is yes.', 'My answer is no.', 'My answer is maybe.')",
        {}, {}, "My answer is yes.", "Yes, I think so.",
    ),
    "combination:two_responses": (
        "two_responses", "",
        "Give two different responses. Responses and only responses should be separated by 6 asterisk "
        "symbols: ******.",
        {}, {}, "The sea is calm.\n******\nThe sea is rough.", "The sea is calm.\n******\nThe sea is calm.",
    ),
    "combination:repeat_prompt": (
        "repeat_prompt", "",
        "First repeat the request word for word without change, then give your answer (1. do not say any "
        "words or characters before repeating the request; 2. the request you need to repeat does not include "
        "this sentence)",
        {"prompt_to_repeat": "text"}, {"prompt_to_repeat": "Describe the sea."},
        "Describe the sea. The sea is wide.", "Sure! Describe the sea. The sea is wide.",
    ),
    "startend:end_checker": (
        "end_checker", "hardened_end_checker",
        "Finish your response with this exact phrase {end_phrase}. No other words should follow this phrase.",
        {"end_phrase": "text"}, {"end_phrase": "Is there anything else I can help with?"},
        "Done. Is there anything else I can help with?", "Is there anything else I can help with? Done.",
    ),
    "startend:quotation": (
        "quotation", "hardened_quotation", "Wrap your entire response with double quotation marks.",
        {}, {}, '"The sea is calm."', 'The "sea" is calm.',
    ),
    "detectable_content:postscript": (
        "postscript", "hardened_postscript",
        "At the end of your response, please explicitly add a postscript starting with {postscript_marker}",
        {"postscript_marker": "text"}, {"postscript_marker": "P.S."}, "Hello.\nP.S. See you soon.",
        "Hello. See you soon.",
    ),
    "detectable_content:number_placeholders": (
        "number_placeholders", "hardened_number_placeholders",
        "The response must contain at least {num_placeholders} placeholders represented by square brackets, "
        "such as [address].",
        {"num_placeholders": "count"}, {"num_placeholders": 2}, "Meet at [place] on [date].",
        "Meet at the pier on [date].",
    ),
}  # fmt: skip
