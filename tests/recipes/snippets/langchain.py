# LangChain: OpenAIEmbeddings into an InMemoryVectorStore; pictures through an Embeddings class.
# tested with: langchain-core 1.8.3, langchain-openai 1.7.4
import base64
import mimetypes
from pathlib import Path

import httpx
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_openai import OpenAIEmbeddings

GATEWAY = "http://127.0.0.1:8080/v1"
KEY = "unused"  # any value when auth is off; else a key from GATEWAY_API_KEYS
auth = {"Authorization": f"Bearer {KEY}"}  # for the picture requests below
embeddings = OpenAIEmbeddings(
    model="gemini-embedding-2", base_url=GATEWAY, api_key=KEY, dimensions=768
)
texts = InMemoryVectorStore(embeddings)
texts.add_texts(
    [
        "The Eiffel Tower is in Paris.",
        "Mount Fuji is the highest mountain in Japan.",
        "The Great Barrier Reef lies off Australia.",
    ],
    ids=["paris", "fuji", "reef"],
)
print(texts.similarity_search("the highest mountain in Japan", k=1)[0].id)  # fuji


# OpenAIEmbeddings sends text only: documents here are picture files, posted as image parts.
class PictureEmbeddings(Embeddings):
    """Documents are paths of pictures; queries are text, in the same space."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        parts = []
        for path in texts:
            data = base64.b64encode(Path(path).read_bytes()).decode()
            url = f"data:{mimetypes.guess_type(path)[0]};base64,{data}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        body = {"model": "gemini-embedding-2", "input": parts, "dimensions": 768}
        answer = httpx.post(f"{GATEWAY}/embeddings", json=body, headers=auth, timeout=60)
        answer.raise_for_status()
        return [item["embedding"] for item in answer.json()["data"]]

    def embed_query(self, text: str) -> list[float]:
        return embeddings.embed_query(text)


pictures = InMemoryVectorStore(PictureEmbeddings())
pictures.add_texts(["photos/bicycle.png", "photos/cat.png", "photos/mountain.png"])
print(pictures.similarity_search("a red bicycle", k=1)[0].page_content)  # photos/bicycle.png
