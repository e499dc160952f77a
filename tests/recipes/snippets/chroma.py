# ChromaDB: OpenAIEmbeddingFunction on an ephemeral in-process client; pictures as vectors.
# tested with: chromadb 1.5.9
import base64
import mimetypes
import os
from pathlib import Path

import chromadb
import httpx
from chromadb.config import Settings
from chromadb.utils.embedding_functions import OpenAIEmbeddingFunction

GATEWAY = "http://127.0.0.1:8080/v1"
KEY = "unused"  # any value when auth is off; else a key from GATEWAY_API_KEYS
auth = {"Authorization": f"Bearer {KEY}"}  # for the picture requests below
os.environ.setdefault("CHROMA_OPENAI_API_KEY", KEY)  # Chroma 1.x reads the key from here
# No dimensions=: this function sends it only for model names holding "text-embedding-3".
embed = OpenAIEmbeddingFunction(model_name="gemini-embedding-2", api_base=GATEWAY)
client = chromadb.EphemeralClient(Settings(anonymized_telemetry=False))
texts = client.create_collection(
    "texts", embedding_function=embed, configuration={"hnsw": {"space": "cosine"}}
)
texts.add(
    ids=["paris", "fuji", "reef"],
    documents=[
        "The Eiffel Tower is in Paris.",
        "Mount Fuji is the highest mountain in Japan.",
        "The Great Barrier Reef lies off Australia.",
    ],
)
found = texts.query(query_texts=["the highest mountain in Japan"], n_results=1)
print(found["ids"][0][0])  # fuji


# OpenAIEmbeddingFunction sends text only: post image parts to /v1/embeddings for the pictures.
def embed_pictures(paths: list[str]) -> list[list[float]]:
    parts = []
    for path in paths:
        data = base64.b64encode(Path(path).read_bytes()).decode()
        url = f"data:{mimetypes.guess_type(path)[0]};base64,{data}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    body = {"model": "gemini-embedding-2", "input": parts}  # 3072 dims, as `embed` gives
    answer = httpx.post(f"{GATEWAY}/embeddings", json=body, headers=auth, timeout=60)
    answer.raise_for_status()
    return [item["embedding"] for item in answer.json()["data"]]


photos = ["photos/bicycle.png", "photos/cat.png", "photos/mountain.png"]
pictures = client.create_collection(
    "pictures", embedding_function=embed, configuration={"hnsw": {"space": "cosine"}}
)
pictures.add(ids=photos, uris=photos, embeddings=embed_pictures(photos))
found = pictures.query(query_texts=["a red bicycle"], n_results=1)  # the query is text
print(found["ids"][0][0])  # photos/bicycle.png
