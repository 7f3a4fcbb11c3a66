"""Personas: the study's one-line role (gender, job, MBTI), generated with Faker or loaded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mechvalue.errors import MechValueError
from mechvalue.inputs import read_json


@dataclass(frozen=True)
class Role:
    """A persona the model role-plays (exported as `mechvalue.Persona`): a name and the study's
    one-line trait. The prompt introduces it before each question; `None` in place of a persona
    asks with no persona. Made by `generate_personas`, read by `load_players`, or built directly,
    e.g. `Persona("Ada", "Gender: female; Job: Engineer, MBTI: INTJ")`."""

    name: str
    """the persona's name, also its row label (`player_name`) in value tables"""
    trait: str
    """the study's one-line trait, `Gender: <g>; Job: <job>, MBTI: <type>`"""


def _personas() -> dict:
    return json.loads((resources.files("mechvalue.data") / "personas.json").read_text())


def generate_roles(n: int, seed: int = 0) -> list[Role]:
    """`n` distinct seeded personas in the study's format (Faker names and jobs, random MBTI)."""
    from faker import Faker

    fake = Faker("en_US")
    fake.seed_instance(seed)
    lists = _personas()
    roles, seen = [], set()
    while len(roles) < n:
        gender = fake.random_element(lists["genders"])
        if gender == "female":
            name = fake.name_female()
        elif gender == "male":
            name = fake.name_male()
        else:
            name = fake.name_nonbinary()
        if name in seen:
            continue
        seen.add(name)
        trait = f"Gender: {gender}; Job: {fake.job()}, MBTI: {fake.random_element(lists['mbti'])}"
        roles.append(Role(name, trait))
    return roles


def load_players(path: str | Path) -> list[Role]:
    """Roles from the study's players*.json ({name: {"mini_trait": ..., ...}})."""
    path = Path(path)
    data = read_json(path, "players")
    if not isinstance(data, dict) or not data:
        raise MechValueError(
            f'{path}: a players file is a non-empty JSON object {{name: {{"mini_trait": ...}}}}'
        )
    roles = []
    for name, info in data.items():
        if not isinstance(info, dict) or "mini_trait" not in info:
            raise MechValueError(f"{path}: player {name!r} has no 'mini_trait'")
        trait = info["mini_trait"]
        if not isinstance(trait, str) or not trait.strip() or not name.strip():
            raise MechValueError(
                f"{path}: player {name!r}: 'mini_trait' must be non-empty text, not {trait!r}"
            )
        roles.append(Role(name, trait))
    return roles
