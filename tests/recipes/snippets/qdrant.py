# Qdrant in local mode: vectors (float and uint8 codes) from the gateway through the openai SDK.
# tested with: qdrant-client 1.20.0, openai 3.57.0
import base64
import mimetypes
from pathlib import Path

from openai import OpenAI
from qdrant_client import QdrantClient, models

KEY = "unused"  # any value when auth is off; else a key from GATEWAY_API_KEYS
gateway = OpenAI(base_url="http://127.0.0.1:8080/v1", api_key=KEY)
qdrant = QdrantClient(":memory:")  # or QdrantClient(path="qdrant-data"), or a server's url=


def embed(inputs: list, **options: object) -> list[list[float]]:
    answer = gateway.embeddings.create(
        model="gemini-embedding-2", input=inputs, dimensions=768, **options
    )
    return [item.embedding for item in answer.data]


def fill(collection: str, params: models.VectorParams, keys: list, vectors: list) -> None:
    qdrant.create_collection(collection, vectors_config=params)
    points = [
        models.PointStruct(id=i, vector=v, payload={"key": k})
        for i, (k, v) in enumerate(zip(keys, vectors, strict=True))
    ]
    qdrant.upsert(collection, points=points)


def nearest(collection: str, vector: list) -> str:
    return qdrant.query_points(collection, query=vector, limit=1).points[0].payload["key"]


texts = {
    "paris": "The Eiffel Tower is in Paris.",
    "fuji": "Mount Fuji is the highest mountain in Japan.",
    "reef": "The Great Barrier Reef lies off Australia.",
}
cosine = models.VectorParams(size=768, distance=models.Distance.COSINE)
fill("texts", cosine, list(texts), embed(list(texts.values())))
print(nearest("texts", embed(["the highest mountain in Japan"])[0]))  # fuji

# uint8 codes (int8 + 128: one byte a dimension) in a uint8 collection, by Euclidean distance:
# the +128 offset cancels in a difference, where it would skew a dot product or a cosine.
# With the openai SDK, codes need encoding_format="float" (its base64 default reads float32).
codes = {"extra_body": {"output_dtype": "uint8"}, "encoding_format": "float"}
uint8 = models.VectorParams(
    size=768, distance=models.Distance.EUCLID, datatype=models.Datatype.UINT8
)
fill("texts_uint8", uint8, list(texts), embed(list(texts.values()), **codes))
print(nearest("texts_uint8", embed(["the highest mountain in Japan"], **codes)[0]))  # fuji


# Pictures: image parts in `input` (the gateway's multimodal extension; the SDK passes them on).
def picture(path: str) -> dict:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    url = f"data:{mimetypes.guess_type(path)[0]};base64,{data}"
    return {"type": "image_url", "image_url": {"url": url}}


photos = ["photos/bicycle.png", "photos/cat.png", "photos/mountain.png"]
fill("pictures", cosine, photos, embed([picture(p) for p in photos]))
print(nearest("pictures", embed(["a red bicycle"])[0]))  # photos/bicycle.png
