# Haystack: OpenAI embedders into an InMemoryDocumentStore; pictures through a small component.
# tested with: haystack-ai 3.4.1
import base64
import mimetypes
from dataclasses import replace
from pathlib import Path

import httpx
from haystack import Document, Pipeline, component
from haystack.components.embedders import OpenAIDocumentEmbedder, OpenAITextEmbedder
from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.utils import Secret

GATEWAY = "http://127.0.0.1:8080/v1"
KEY = "unused"  # any value when auth is off; else a key from GATEWAY_API_KEYS
auth = {"Authorization": f"Bearer {KEY}"}  # for the picture requests below
common = {
    "api_key": Secret.from_token(KEY),
    "model": "gemini-embedding-2",
    "api_base_url": GATEWAY,
    "dimensions": 768,
}


def search_pipeline(store: InMemoryDocumentStore) -> Pipeline:
    search = Pipeline()
    search.add_component("embed", OpenAITextEmbedder(**common))
    search.add_component("retrieve", InMemoryEmbeddingRetriever(document_store=store, top_k=1))
    search.connect("embed.embedding", "retrieve.query_embedding")
    return search


texts = InMemoryDocumentStore(embedding_similarity_function="cosine")
embedder = OpenAIDocumentEmbedder(**common, progress_bar=False)
texts.write_documents(
    embedder.run(
        [
            Document(id="paris", content="The Eiffel Tower is in Paris."),
            Document(id="fuji", content="Mount Fuji is the highest mountain in Japan."),
            Document(id="reef", content="The Great Barrier Reef lies off Australia."),
        ]
    )["documents"]
)
found = search_pipeline(texts).run({"embed": {"text": "the highest mountain in Japan"}})
print(found["retrieve"]["documents"][0].id)  # fuji


# OpenAIDocumentEmbedder sends text only: this component posts each picture as an image part.
@component
class GatewayImageEmbedder:
    """Sets each Document's embedding from the picture at its meta["file_path"]."""

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]) -> dict[str, list[Document]]:
        parts = []
        for doc in documents:
            path = doc.meta["file_path"]
            data = base64.b64encode(Path(path).read_bytes()).decode()
            url = f"data:{mimetypes.guess_type(path)[0]};base64,{data}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        body = {"model": "gemini-embedding-2", "input": parts, "dimensions": 768}
        answer = httpx.post(f"{GATEWAY}/embeddings", json=body, headers=auth, timeout=60)
        answer.raise_for_status()
        vectors = [item["embedding"] for item in answer.json()["data"]]
        return {
            "documents": [replace(d, embedding=v) for d, v in zip(documents, vectors, strict=True)]
        }


pictures = InMemoryDocumentStore(embedding_similarity_function="cosine")
photos = [Document(meta={"file_path": f"photos/{n}.png"}) for n in ("bicycle", "cat", "mountain")]
pictures.write_documents(GatewayImageEmbedder().run(photos)["documents"])
found = search_pipeline(pictures).run({"embed": {"text": "a red bicycle"}})
print(found["retrieve"]["documents"][0].meta["file_path"])  # photos/bicycle.png
