"""Inputs the console's tests share."""

# Long enough for near reuse (160 characters), no numbers, names or critical words; the variant
# has one spelling slip in a long word, the kind of edit near reuse accepts.
_WORDS = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut"
    " labore et dolore magna aliqua ut enim ad minim veniam quis nostrud exercitation ullamco"
    " laboris nisi ut aliquip ex ea commodo consequat "
)
NEAR_TEXT = _WORDS * 2
NEAR_VARIANT = NEAR_TEXT.replace("exercitation", "exercitaton", 1)
