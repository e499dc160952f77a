# LlamaIndex: OpenAIEmbedding into a VectorStoreIndex; pictures through a MultiModalEmbedding.
# tested with: llama-index-core 0.14.25, llama-index-embeddings-openai 0.7.0
import base64
import mimetypes
from pathlib import Path

import httpx
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.embeddings import MultiModalEmbedding
from llama_index.core.indices.multi_modal import MultiModalVectorStoreIndex
from llama_index.core.schema import ImageDocument
from llama_index.embeddings.openai import OpenAIEmbedding

GATEWAY = "http://127.0.0.1:8080/v1"
KEY = "unused"  # any value when auth is off; else a key from GATEWAY_API_KEYS
auth = {"Authorization": f"Bearer {KEY}"}  # for the picture requests below
Settings.embed_model = OpenAIEmbedding(
    model_name="gemini-embedding-2", api_base=GATEWAY, api_key=KEY, dimensions=768
)

index = VectorStoreIndex.from_documents(
    [
        Document(text="The Eiffel Tower is in Paris.", doc_id="paris"),
        Document(text="Mount Fuji is the highest mountain in Japan.", doc_id="fuji"),
        Document(text="The Great Barrier Reef lies off Australia.", doc_id="reef"),
    ]
)
best = index.as_retriever(similarity_top_k=1).retrieve("the highest mountain in Japan")[0]
print(best.node.ref_doc_id)  # fuji


# OpenAIEmbedding sends text only. Pictures: a MultiModalEmbedding posting image parts.
class GatewayEmbedding(MultiModalEmbedding):
    """Text and pictures into Gemini Embedding 2's one space, through the gateway."""

    def _embed(self, item: object) -> list[float]:
        body = {"model": "gemini-embedding-2", "input": [item], "dimensions": 768}
        answer = httpx.post(f"{GATEWAY}/embeddings", json=body, headers=auth, timeout=60)
        answer.raise_for_status()
        return answer.json()["data"][0]["embedding"]

    def _get_image_embedding(self, img_file_path: str) -> list[float]:
        mime = mimetypes.guess_type(img_file_path)[0]
        data = base64.b64encode(Path(img_file_path).read_bytes()).decode()
        return self._embed({"type": "image_url", "image_url": f"data:{mime};base64,{data}"})

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed(text)

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed(query)

    async def _aget_image_embedding(self, img_file_path: str) -> list[float]:
        return self._get_image_embedding(img_file_path)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


photos = [  # metadata too: the index skips documents whose text and metadata are both empty
    ImageDocument(image_path=f"photos/{name}.png", metadata={"file_name": f"{name}.png"})
    for name in ("bicycle", "cat", "mountain")
]
pictures = MultiModalVectorStoreIndex.from_documents(photos, image_embed_model=GatewayEmbedding())
retriever = pictures.as_retriever(image_similarity_top_k=1)
best = retriever.text_to_image_retrieve("a red bicycle")[0]
print(best.node.image_path)  # photos/bicycle.png
