"""Who answers, at three persona strengths: the study's one-line persona (gender, job, MBTI), the
same people with a short value-neutral biography (age, town, years in the job, household,
routine: facts that name no value), and the known-group personas, whose lines say what they
live for (`mechvalue/data/known_groups.json`).

A small model may ignore one line; a biography gives it more to role-play without telling it
which values to hold, so any value difference it makes comes from the model's own associations.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Literal, get_args

from mechvalue.errors import MechValueError
from mechvalue.study.roles import Role, generate_roles, load_players

PersonaKind = Literal["one-line", "biography", "known-groups"]
PERSONA_KINDS: tuple[str, ...] = get_args(PersonaKind)
_HOUSEHOLDS = (
    "lives alone",
    "lives with a partner",
    "lives with a partner and two children",
    "lives with a roommate",
    "lives with an elderly parent",
    "lives with a partner and one child",
)
_ROUTINES = (
    "takes the bus to work",
    "drives to work",
    "walks to work",
    "cycles to work",
    "works from home on Fridays",
    "starts work early in the morning",
)
_COLOURS = ("blue", "green", "red", "yellow", "grey", "purple", "orange", "brown")


def known_groups_path() -> Path:
    return Path(str(resources.files("mechvalue.data") / "known_groups.json"))


def biography(role: Role, seed: int = 0) -> Role:
    """`role` with value-neutral facts after its line, drawn by a Faker seeded by `seed` and the name."""
    from faker import Faker

    if re.match(r"Gender: [^;]+; Job: .+, MBTI: \S+$", role.trait) is None:
        raise MechValueError(f"persona {role.name!r}: {role.trait!r} is not the study's one-line format")
    fake = Faker("en_US")
    fake.seed_instance(f"{seed}:{role.name}")
    first = role.name.split()[0]
    bio = (
        f"{role.name} is {fake.random_int(24, 68)} years old and lives in {fake.city()}, {fake.state()}. "
        f"{first} has had this job for {fake.random_int(1, 15)} years, {fake.random_element(_HOUSEHOLDS)} "
        f"and {fake.random_element(_ROUTINES)}. {first} grew up with {fake.random_int(0, 4)} siblings; "
        f"favourite colour: {fake.random_element(_COLOURS)}"
    )
    return Role(role.name, f"{role.trait}. {bio}")


def persona_set(kind: str, n: int, seed: int = 0) -> list[Role]:
    """`n` personas of strength `kind` (PERSONA_KINDS); the known groups are 12, so at most 12."""
    if kind not in PERSONA_KINDS:
        raise MechValueError(f"persona={kind!r}: expected one of {', '.join(PERSONA_KINDS)}")
    if n < 0:
        raise MechValueError(f"{n} personas: the number cannot be negative")
    if kind == "known-groups":
        return load_players(known_groups_path())[:n]
    roles = generate_roles(n, seed)
    return roles if kind == "one-line" else [biography(r, seed) for r in roles]
