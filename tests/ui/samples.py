"""Inputs the console's tests share."""

# Long enough for near reuse (160 characters), no numbers, names or critical words: the same
# text twice with one word changed is a near duplicate (token edit ratio ~0.986).
NEAR_TEXT = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut"
    " labore et dolore magna aliqua ut enim ad minim veniam quis nostrud exercitation ullamco"
    " laboris nisi ut aliquip ex ea commodo consequat "
)
