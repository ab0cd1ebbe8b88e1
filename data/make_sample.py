"""Writes data/sample/: the demo's corpus in the loader's input format (a few hundred chunks,
English and Korean, with the blank, punctuation-only, very short, empty and dropped chunks
that real parsers produce). Deterministic: python data/make_sample.py."""

import json
import random
from pathlib import Path

EN = {
    "postgres": [
        "PostgreSQL stores each table as a heap of 8 kB pages, and an index points into those pages by tuple identifier.",
        "Autovacuum removes dead row versions left behind by updates and deletes, and it keeps the visibility map current so index-only scans can skip the heap.",
        "A statement-level trigger with a transition table sees every row a statement inserted at once, which suits checks that work best in batches.",
        "The planner estimates how many rows each step returns from the statistics that ANALYZE collects, and a bad estimate can pick a slow plan.",
        "Logical replication sends row changes to a subscriber, while physical replication copies the write-ahead log byte for byte.",
    ],
    "retrieval": [
        "Retrieval-augmented generation looks up passages related to a question and hands them to the language model as context.",
        "A chunk that is too short carries little meaning, and its embedding tends to land near every other short chunk.",
        "Cosine similarity compares the direction of two vectors and ignores their length, so normalised vectors are compared by their dot product alone.",
        "An approximate nearest neighbour index such as HNSW trades a little recall for queries that stay fast at millions of vectors.",
        "Chunking a document on paragraph boundaries keeps related sentences together and makes the retrieved context easier to read.",
    ],
    "operations": [
        "The embedding server runs on a separate machine with a GPU, and the loader sends it batches of text over HTTP.",
        "When the server is overloaded it answers with status 429, and the client should wait and try again instead of failing the whole run.",
        "Monitoring the share of low-quality embeddings over time shows when a model upgrade or a parser change went wrong.",
        "A nightly job re-checks stored embeddings after the thresholds change, in batches that each commit on their own.",
        "Backups of the database include the embeddings, so a restore does not need to call the embedding server again.",
    ],
}
KO = {
    "데이터베이스": [
        "PostgreSQL은 테이블을 8킬로바이트 페이지의 힙으로 저장하고, 인덱스는 튜플 식별자로 그 페이지를 가리킵니다.",
        "자동 청소 작업은 갱신과 삭제가 남긴 죽은 행을 정리하고, 가시성 맵을 최신으로 유지합니다.",
        "트리거는 삽입되는 모든 행을 검사할 수 있으므로 어떤 작성자도 품질 검사를 건너뛸 수 없습니다.",
        "통계 정보가 오래되면 실행 계획이 잘못 선택되어 질의가 느려질 수 있습니다.",
        "논리 복제는 행 단위 변경을 구독자에게 보내고, 물리 복제는 로그를 그대로 복사합니다.",
    ],
    "검색": [
        "검색 증강 생성은 질문과 관련된 문단을 찾아 언어 모델에게 문맥으로 전달합니다.",
        "너무 짧은 청크는 의미가 거의 없고, 그 임베딩은 다른 짧은 청크들과 비슷한 곳에 모입니다.",
        "코사인 유사도는 두 벡터의 방향만 비교하며 길이는 무시합니다.",
        "근사 최근접 이웃 색인은 약간의 재현율을 포기하는 대신 수백만 개의 벡터에서도 빠르게 검색합니다.",
        "문단 경계에서 문서를 나누면 관련된 문장이 함께 남아 검색된 문맥을 읽기 쉬워집니다.",
    ],
    "운영": [
        "임베딩 서버는 GPU가 있는 별도의 장비에서 실행되고, 적재기는 HTTP로 텍스트 묶음을 보냅니다.",
        "서버가 과부하일 때는 429 상태로 응답하므로, 클라이언트는 잠시 기다렸다가 다시 시도해야 합니다.",
        "저품질 임베딩의 비율을 시간에 따라 지켜보면 모델 교체나 파서 변경의 문제를 빨리 알 수 있습니다.",
        "임계값이 바뀐 뒤에는 야간 작업이 저장된 임베딩을 묶음 단위로 다시 검사합니다.",
        "데이터베이스 백업에는 임베딩도 들어 있으므로 복구할 때 임베딩 서버를 다시 부를 필요가 없습니다.",
    ],
}
# the degenerate chunks real parsers produce
ODD = [
    " ",
    ".",
    "...",
    "?",
    "ㅋㅋㅋ",
    "\n\n",
    "- ",
    "1.",
    "표 1",
    "참고",
    "See also",
    "•",
    "—",
    "OK",
]


def documents(lang: str, topics: dict, count: int, rng: random.Random) -> list:
    docs = []
    for d in range(count):
        topic = rng.choice(sorted(topics))
        doc_id = f"{lang}-{d:03d}"
        chunks = []
        for i in range(rng.randint(4, 9)):
            r = rng.random()
            if r < 0.08:
                content = rng.choice(ODD)
            elif r < 0.11:
                content = ""
            else:
                content = " ".join(rng.sample(topics[topic], rng.randint(1, 3)))
            chunks.append(
                {
                    "chunk_id": f"{doc_id}-{i:02d}",
                    "doc_id": doc_id,
                    "content": content,
                    "drop": r > 0.95,
                    "metadata": {"lang": lang, "topic": topic},
                }
            )
        docs.append(
            {
                "doc_id": doc_id,
                "title": f"{topic} {d}",
                "source": f"sample/{lang}/{doc_id}.txt",
                "metadata": {"lang": lang},
                "chunks": chunks,
            }
        )
    return docs


def main() -> None:
    rng = random.Random(11)
    out = Path(__file__).parent / "sample"
    out.mkdir(exist_ok=True)
    en = documents("en", EN, 25, rng)
    ko = documents("ko", KO, 25, rng)
    text = json.dumps({"documents": en}, ensure_ascii=False, indent=1) + "\n"
    (out / "english.json").write_text(text, encoding="utf-8")
    lines = "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in ko)
    (out / "korean.jsonl").write_text(lines, encoding="utf-8")
    chunks = [c for d in en + ko for c in d["chunks"]]
    print(
        f"{len(chunks)} chunks: {sum(c['content'] == '' for c in chunks)} empty,"
        f" {sum(c['drop'] for c in chunks)} dropped, {sum(c['content'] in ODD for c in chunks)}"
        " blank, punctuation or very short"
    )


if __name__ == "__main__":
    main()
