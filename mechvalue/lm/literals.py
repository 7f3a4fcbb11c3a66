"""The names a model is loaded with (dtype, prompt format), torch-free so that configs and the
command line can use them without loading torch."""

from typing import Literal, get_args

DEFAULT_MODEL = "smollm2-135m-instruct"
DType = Literal["float32", "bfloat16", "float16"]
PromptFormat = Literal["chat", "gemma", "llama"]
DTYPES: tuple[str, ...] = get_args(DType)
PROMPT_FORMATS: tuple[str, ...] = get_args(PromptFormat)
