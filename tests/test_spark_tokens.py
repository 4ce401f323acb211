"""impl.spark.tokens: the seeded LLM tokenizer's layout reproduces every id SparkAudio's tokenizer-extension script
recorded (its printed output: the only public statement of the real Spark-TTS-0.5B ids beyond the bicodec ranges)."""
from impl.spark import tokens as T

# (token, id) exactly as printed by SparkAudio's extend_tokenizer run ("New vocab size: 165158")
RECORDED = [
    ("<|task_prompt_tts|>", 165144), ("<|start_content|>", 165146), ("<|end_content|>", 165152),
    ("<|start_style_label|>", 165147), ("<|gender_0|>", 165032), ("<|age_0|>", 165027), ("<|emotion_0|>", 165035),
    ("<|pitch_label_0|>", 164965), ("<|pitch_var_label_0|>", 164970), ("<|loudness_label_0|>", 165022),
    ("<|speed_label_0|>", 164986), ("<|end_style_label|>", 165153), ("<|start_style_prompt|>", 165148),
    ("<|end_style_prompt|>", 165154), ("<|start_acoustic_token|>", 165149), ("<|pitch_value_0|>", 163953),
    ("<|pitch_var_value_0|>", 164954), ("<|loudness_value_0|>", 164991), ("<|speed_value_0|>", 164975),
    ("<|end_acoustic_token|>", 165155), ("<|start_global_token|>", 165150), ("<|bicodec_global_10|>", 151675),
    ("<|bicodec_global_20|>", 151685), ("<|bicodec_global_31|>", 151696), ("<|end_global_token|>", 165156),
    ("<|start_semantic_token|>", 165151), ("<|bicodec_semantic_311|>", 156072),
    ("<|bicodec_semantic_240|>", 156001), ("<|bicodec_semantic_1150|>", 156911),
    ("<|bicodec_semantic_8191|>", 163952), ("<|im_end|>", 151645),
]


def test_recorded_ids():
    ids = {t: i for i, t, _ in T.layout()}
    assert [(t, ids.get(t)) for t, _ in RECORDED] == RECORDED


def test_added_count_and_bounds():
    added = T.added_order()
    assert len(added) == 13493 and len(set(added)) == len(added)  # "Added 13493 tokens"
    assert T.GLOBAL_BASE + len(added) == 165158  # "New vocab size: 165158"
    rows = T.layout()
    assert [i for i, _, _ in rows] == list(range(T.QWEN_BASE, T.VOCAB_SIZE))
    assert all(not special for i, _, special in rows if i >= T.GLOBAL_BASE)  # add_tokens(...): none special


def test_sourced_ids_of_the_prompts():
    """The tokens the official prompts write (token_parser / cli/SparkTTS.py) all sit at recorded-order ids."""
    ids = {t: i for i, t, _ in T.layout()}
    assert ids["<|task_tts|>"] == 165137 and ids["<|task_controllable_tts|>"] == 165143
    assert [ids[f"<|gender_{i}|>"] for i in T.GENDER_MAP.values()] == [165032, 165033]
    assert [ids[f"<|pitch_label_{i}|>"] for i in range(5)] == list(range(164965, 164970))
    assert [ids[f"<|speed_label_{i}|>"] for i in range(5)] == list(range(164986, 164991))
