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
    """A persona: who the model is asked to be when it answers a questionnaire item
    (`mechvalue.Persona` is this class).

    The prompt gives the model `trait` alone ("(FYI, here is your trait. <trait>)" before the
    instructions, `mechvalue.study.prompts`); `name` labels the persona's rows in every table
    (`player_name`) and seeds its biography and the study's per-persona item subset
    (`role_subset`). None in place of a persona is the
    no-persona prompt, asked first in every design.

    Where personas come from:
    - `mechvalue.generate_personas(n, seed)` (`generate_roles`): n distinct personas in the study's
      one-line format, names and jobs drawn by Faker seeded with `seed`, gender and MBTI type from
      `mechvalue/data/personas.json`; the same seed gives the same personas;
    - `mechvalue.load_players(path)`: the study's players*.json, {name: {"mini_trait": trait, ...}};
    - `mechvalue.study.personas.persona_set(kind, n, seed)`: the one-line personas, the same people
      with a value-neutral biography appended ("biography"), or the shipped known-group personas
      whose lines say what they live for ("known-groups", 12 at most).

    Example:

        personas = mechvalue.generate_personas(2, seed=0)
        personas[0]  # Role(name='Jason Green', trait='Gender: male; Job: Sales promotion
                     #   account executive, MBTI: ESFP')
        own = mechvalue.Persona("Ada", "Gender: female; Job: Engineer, MBTI: INTP")
        m = mechvalue.measure(model, items, [None, *personas, own])  # no persona first, then each
    """

    name: str
    """how the persona's rows are labelled (`player_name`); not shown to the model"""
    trait: str
    """what the prompt tells the model about itself; the study's format is
    "Gender: <gender>; Job: <job>, MBTI: <type>"; any text works in the prompt (a biography needs
    the study's format)"""


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
