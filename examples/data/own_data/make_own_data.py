r"""Writes ``interactions.csv`` and ``items.csv`` beside this file: the small "raw" shop
data that ``examples/own_data.py`` starts from. Run once; the outputs are committed.

    python examples/data/own_data/make_own_data.py [OUT_DIR]

The interactions are those of dreamgeo's planted ``tiny`` preset (seed 0: 300 users,
200 items, latent item topics and user preferences, popularity), dressed as a raw
export: Amazon-style string ids (users ``U00373``, items ``B0`` + 8 letters and digits
such as ``B0K7XQ2M4A``), ISO 8601 times, 1-5 star ratings, the rows shuffled, 25 repeated
(user, item) rows (re-reviews) and 12 extra users with one to three interactions (below
the 5-core), so that ``dreamgeo prepare`` has duplicates and a k-core to report. The
items table has made-up titles, brands and categories drawn from each item's dominant
planted topic (eight product families), so that item text carries the same signal as
the planted features. Everything is seeded: the same files every time.
"""

from __future__ import annotations

import csv
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from dreamgeo.datasets import generate_planted

HERE = Path(__file__).resolve().parent
ALPHABET = np.array(list("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"))

# one product family per planted topic: category, brands, adjectives, nouns
FAMILIES = [
    (
        "Home & Kitchen|Cookware",
        ["Copperline", "Hearthwise", "Saltmark"],
        ["Stainless Steel", "Nonstick", "Cast Iron", "Tri-Ply"],
        ["Skillet", "Saucepan", "Dutch Oven", "Knife Set", "Cutting Board"],
    ),
    (
        "Sports & Outdoors|Camping",
        ["Ridgetrail", "Nomadix", "Pinecrest"],
        ["Ultralight", "Waterproof", "Insulated", "Folding"],
        ["Tent", "Sleeping Bag", "Lantern", "Camp Stove", "Hiking Backpack"],
    ),
    (
        "Baby|Nursery",
        ["Little Sprout", "Cuddlebee", "Nestling"],
        ["Organic Cotton", "BPA-Free", "Soft Muslin", "Convertible"],
        ["Swaddle Blanket", "Bottle Set", "Crib Sheet", "Teether", "Baby Carrier"],
    ),
    (
        "Patio, Lawn & Garden|Gardening",
        ["Greenfinch", "Terrahaus", "Bloomfield"],
        ["Heavy Duty", "Ergonomic", "Expandable", "Solar"],
        ["Garden Hose", "Pruning Shears", "Raised Planter", "Path Light", "Trowel"],
    ),
    (
        "Sports & Outdoors|Fitness",
        ["Ironpulse", "Flexora", "Corestride"],
        ["Adjustable", "Non-Slip", "High Density", "Resistance"],
        ["Dumbbell Set", "Yoga Mat", "Foam Roller", "Jump Rope", "Kettlebell"],
    ),
    (
        "Office Products|Desk Accessories",
        ["Deskwell", "Inkhaven", "Quillory"],
        ["Wireless", "Ergonomic", "Mechanical", "Height Adjustable"],
        ["Keyboard", "Mouse", "Desk Lamp", "Monitor Stand", "Notebook"],
    ),
    (
        "Pet Supplies|Dogs & Cats",
        ["Pawsome", "Furrow", "Tailwind"],
        ["Chew-Resistant", "Orthopedic", "Self-Cleaning", "Interactive"],
        ["Dog Bed", "Cat Tree", "Leash", "Litter Box", "Puzzle Feeder"],
    ),
    (
        "Electronics|Audio",
        ["Sonance", "Echovale", "Voltaire Audio"],
        ["Bluetooth", "Noise Cancelling", "Portable", "Hi-Fi"],
        ["Headphones", "Speaker", "Earbuds", "Turntable", "Soundbar"],
    ),
]
COLORS = ["Black", "White", "Graphite", "Sage", "Navy", "Sand", "Red", "Blue"]


def _ids(rng: np.random.Generator, count: int, make) -> list[str]:
    seen: set[str] = set()
    out = []
    while len(out) < count:
        text = make(rng)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def main(out_dir: str | Path = HERE) -> None:
    out_dir = Path(out_dir)
    planted = generate_planted("tiny", seed=0)
    rng = np.random.default_rng(31)
    table = planted.interactions  # userID, itemID, rating, timestamp, x_label
    num_users = int(table[:, 0].max()) + 1
    num_items = planted.item_topics.shape[0]
    users = _ids(rng, num_users + 12, lambda r: f"U{r.integers(0, 100_000):05d}")
    items = _ids(rng, num_items, lambda r: "B0" + "".join(r.choice(ALPHABET, 8)))

    rows = [
        (users[u], items[i], int(rng.integers(3, 6)), _iso(t)) for u, i, _, t, _ in table.tolist()
    ]
    for pick in rng.choice(len(rows), 25, replace=False):  # re-reviews, a later time
        user, item, _, when = rows[pick]
        later = datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp() + 86_400 * 30
        rows.append((user, item, int(rng.integers(1, 6)), _iso(int(later))))
    for extra in users[num_users:]:  # below the 5-core
        for item in rng.choice(num_items, int(rng.integers(1, 4)), replace=False):
            rows.append((extra, items[item], int(rng.integers(1, 6)), _iso(1_300_000_000)))
    order = rng.permutation(len(rows))
    with open(out_dir / "interactions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "rating", "timestamp"])
        writer.writerows(rows[k] for k in order)

    with open(out_dir / "items.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "title", "brand", "categories"])
        for j, topic in enumerate(planted.item_topics.argmax(1).tolist()):
            category, brands, adjectives, nouns = FAMILIES[topic % len(FAMILIES)]
            brand = str(rng.choice(brands))
            title = (
                f"{brand} {rng.choice(adjectives)} {rng.choice(nouns)}, "
                f"{rng.choice(COLORS)}, Model {str(rng.choice(ALPHABET))}{rng.integers(10, 99)}"
            )
            writer.writerow([items[j], title, brand, category])
    print(f"wrote {out_dir / 'interactions.csv'} ({len(rows)} rows) and {out_dir / 'items.csv'}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
