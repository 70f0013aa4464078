"""The 256 words of a device-linking code ``NN-word-word`` (DESIGN §9).

Each word stands for one byte, so a code's two words carry 16 bits; the
nameplate adds none (it is public, announced on mDNS). The list was written
for being read aloud and typed on a second keyboard: short, common, concrete
English nouns of 3 to 8 lower-case ASCII letters, no homophones, no word a
prefix of another, and every two words at least two edits apart, so a single
typo never turns one word into another and can be pointed out
(:func:`cove.link_code.parse_code` suggests the one word a typo came from).
Never reorder or edit the list: a code's bytes are positions in it.
"""

from __future__ import annotations

WORDS: tuple[str, ...] = (
    "acorn", "anchor", "anvil", "apple", "apron", "arrow", "atlas", "badger",
    "baker", "bamboo", "banjo", "barn", "barrel", "basket", "beach", "bean",
    "beaver", "berry", "bike", "bird", "biscuit", "blade", "blanket", "bloom",
    "blossom", "boat", "bone", "bottle", "brick", "bridge", "brook", "brush",
    "bucket", "buffalo", "butter", "button", "cabin", "cactus", "camel", "camera",
    "candle", "canoe", "canyon", "carpet", "castle", "chair", "chalk", "cheese",
    "cherry", "chess", "chimney", "cliff", "clock", "cloud", "clover", "cobra",
    "coffee", "comet", "compass", "cookie", "copper", "coral", "cotton", "crab",
    "crane", "crayon", "cricket", "crown", "crystal", "cup", "daisy", "desert",
    "dolphin", "door", "dragon", "drum", "duck", "eagle", "earth", "elbow",
    "ember", "engine", "falcon", "feather", "fence", "fern", "field", "flag",
    "flute", "forest", "fork", "fossil", "fox", "frog", "galaxy", "garden",
    "garlic", "gecko", "ghost", "giant", "ginger", "glacier", "glove", "gold",
    "grape", "grass", "guitar", "hammer", "hammock", "harbor", "harp", "hat",
    "hawk", "hazel", "heart", "helmet", "hill", "honey", "igloo", "island",
    "ivory", "jacket", "jaguar", "jelly", "jewel", "jungle", "kayak", "kettle",
    "kite", "kitten", "koala", "ladder", "lake", "lamp", "lantern", "lemon",
    "lettuce", "lion", "lizard", "llama", "lobster", "lotus", "magnet", "mango",
    "maple", "marble", "meadow", "melon", "meteor", "mirror", "monkey", "moon",
    "mountain", "mouse", "muffin", "mug", "music", "nest", "noodle", "ocean",
    "olive", "onion", "orange", "otter", "owl", "oyster", "panda", "papaya",
    "paper", "parrot", "peanut", "pearl", "pebble", "pencil", "pepper", "piano",
    "pickle", "pillow", "pilot", "pine", "pirate", "planet", "pony", "potato",
    "pumpkin", "puzzle", "quilt", "rabbit", "radio", "raft", "raven", "rhino",
    "ribbon", "river", "robin", "rocket", "rope", "ruby", "saddle", "salmon",
    "sand", "satchel", "scarf", "shark", "sheep", "shell", "ship", "shoe",
    "silver", "skate", "sled", "snail", "snake", "snow", "sock", "spider",
    "sponge", "spoon", "squid", "star", "stone", "storm", "sugar", "summer",
    "swan", "table", "thistle", "thunder", "tiger", "timber", "toast", "tomato",
    "tooth", "torch", "tower", "tractor", "train", "tree", "trumpet", "tulip",
    "tunnel", "turnip", "turtle", "umbrella", "valley", "violin", "wagon", "walnut",
    "walrus", "water", "wheel", "window", "winter", "wolf", "yogurt", "zebra",
)
"""The words in order; ``WORDS[b]`` is the word for byte ``b``."""

WORD_INDEX: dict[str, int] = {word: i for i, word in enumerate(WORDS)}
"""Each word's position."""
