"""One exception type for problems a user can fix: the CLI prints its message on one line, no traceback."""


class EmotuneError(Exception):
    """A problem with the user's input (file, config, data), described in one line."""


class ConfigError(EmotuneError):
    """A recipe key that is unknown, mistyped or out of range."""


def check_ranges(section, rules: dict[str, str]) -> None:
    """Refuse out-of-range settings when a config section is built, before anything runs.

    `rules` maps a field name to one of ">0", ">=0", ">=1", "0..1" (0 <= v < 1), "[0..1]" (0 <= v <= 1)
    or "(0..1)" (0 < v < 1).
    The loader adds the section prefix and the file to the message. A value of None means "not set".
    """
    tests = {">0": lambda v: v > 0, ">=0": lambda v: v >= 0, ">=1": lambda v: v >= 1,
             "0..1": lambda v: 0 <= v < 1, "[0..1]": lambda v: 0 <= v <= 1, "(0..1)": lambda v: 0 < v < 1}
    words = {">0": "> 0", ">=0": ">= 0", ">=1": ">= 1", "0..1": "in [0, 1)", "[0..1]": "in [0, 1]", "(0..1)": "in (0, 1)"}
    for name, rule in rules.items():
        value = getattr(section, name)
        if value is not None and not tests[rule](value):
            raise ConfigError(f"{name}: must be {words[rule]}, got {value!r}")
