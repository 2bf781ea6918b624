"""LLMReasoner: a model's verdict, grounded in the case and checked against the evidence.

Order of events for one case:

1. scan the alert text for instruction-like content (flag ``injection_suspected``);
2. compute the deterministic assessment (always: it is the fallback and the check);
3. ask the model only where it can add something (``LLMSettings.consult``): the
   deterministic assessment is undetermined, or the learned model and the rule and
   vendor evidence disagree about an alert; otherwise the deterministic verdict
   stands and the notes say the model was not needed;
4. unless the budget, the breaker or the cache says otherwise, ask the model with the
   answer schema enforced by the server (or parsed, with one repair retry);
5. reject an answer citing evidence the case does not have or an action off the menu:
   the deterministic assessment stands, and the flags say why;
6. a model verdict milder than the evidence scoring's never stands (whatever its
   confidence: a small model answers "false_positive, 0.0" for real attacks); where the
   model dissents confidently, or the two disagree strongly either way, or the alert text
   carries instructions, flag ``reasoner_disagreement`` so the guard sends the case to a person.

Flags travel in ``Assessment.flags``; the reason node audits them with the
call's model, tokens and latency.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, OrderedDict

from pydantic import BaseModel, Field, ValidationError

from soc_agent.llm.budget import Budget, CircuitBreaker
from soc_agent.llm.client import ChatClient, LLMError, parse_json_object
from soc_agent.llm.config import LLMSettings
from soc_agent.llm.injection import scan_case, scan_text
from soc_agent.llm.prompt import answer_schema, build_messages
from soc_agent.reasoner import DeterministicReasoner, ReasoningInput
from soc_agent.types import Assessment, Verdict

_SEVERITY = {Verdict.TRUE_POSITIVE: 2, Verdict.UNDETERMINED: 1, Verdict.BENIGN_POSITIVE: 0,
             Verdict.FALSE_POSITIVE: 0}
_STRONG = 0.7


def fallback_kind(why: str | None) -> str:
    """A reason the model's answer was not used, without the case-specific details (ids, counts, names)."""
    text = re.sub(r"\[[^\]]*\]|'[^']*'|\([^)]*\)", "", why or "no answer").strip()
    return re.sub(r"\s+", " ", text).rstrip(",;: ")


class LLMAnswer(BaseModel):
    """What the model must return."""

    verdict: Verdict
    confidence: float = Field(ge=0.0, le=1.0)
    narrative: str = Field(max_length=2000)
    evidence_ids: list[str] = Field(max_length=20)
    action: str
    open_questions: list[str] = Field(default_factory=list, max_length=5)


class LLMReasoner:
    """Any OpenAI-compatible model behind the ``Reasoner`` protocol, with the deterministic one as guard rail."""

    name = "llm"

    def __init__(self, settings: LLMSettings, client: ChatClient | None = None,
                 fallback: DeterministicReasoner | None = None, cache_size: int = 2048) -> None:
        self.settings = settings
        self.client = client or ChatClient(settings)
        self.fallback = fallback or DeterministicReasoner()
        self.budget = Budget(settings)
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s)
        self._cache: OrderedDict[str, LLMAnswer] = OrderedDict()
        self._cache_size = cache_size
        self.calls = 0
        self.tokens = 0
        self.cache_hits = 0
        self.call_latencies_ms: list[float] = []
        self.fallbacks: Counter[str] = Counter()
        """Cases decided by the deterministic assessment, by kind of reason (see ``fallback_kind``)."""
        self.not_needed = 0
        """Case runs the model was not asked about: the deterministic and learned paths settled them."""

    def reason(self, data: ReasoningInput) -> Assessment:
        """The model's grounded verdict, or the deterministic one with the reason it stands."""
        baseline = self.fallback.reason(data)
        injection = scan_case(data.case.alerts)
        flags = ["injection_suspected"] if injection else []
        why_ask = self.why_ask(baseline)
        if why_ask is None:
            self.not_needed += 1
            return baseline.model_copy(update={
                "flags": flags, "reasoner": "deterministic (llm not needed)",
                "rationale": f"{baseline.rationale}; the model was not consulted: the evidence scoring and the "
                             f"learned model settled the verdict between them",
            })
        ids = [e.id for e in data.evidence]
        messages = build_messages(data.case, data.evidence, data.menu, self.settings.max_field_chars,
                                  self.settings.fold_system, data.similar)
        key = hashlib.sha256(json.dumps([messages, ids, data.menu], sort_keys=True).encode()).hexdigest()
        schema = answer_schema(ids, data.menu)

        answer, call, why_not = self._cache.get(key), None, None
        if answer is not None:
            self._cache.move_to_end(key)
            self.cache_hits += 1
        elif not self.breaker.allows():
            why_not = "circuit open: the endpoint has been failing"
        elif (refusal := self.budget.refusal(self._estimate(messages))) is not None:
            why_not = refusal
        else:
            answer, call, why_not = self._ask(messages, schema)
            if answer is not None:
                self._cache[key] = answer
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        if answer is not None and why_not is None:
            why_not = self._ungrounded(answer, set(ids), data.menu)
        if answer is None or why_not is not None:
            self.fallbacks[fallback_kind(why_not)] += 1
            return baseline.model_copy(update={
                "flags": flags + ["llm_fallback"], "llm": call,
                "rationale": f"{baseline.rationale}; the model's answer was not used ({why_not}), "
                             f"the deterministic assessment stands",
                "reasoner": "deterministic (llm fallback)",
            })
        return self._merge(answer, baseline, flags, injection, call)

    def why_ask(self, baseline: Assessment) -> str | None:
        """Why the model is worth a call for this case, or None when it cannot add anything."""
        if self.settings.consult == "always":
            return "consulted on every case (consult=always)"
        if baseline.verdict is Verdict.UNDETERMINED:
            return "the evidence leaves the verdict undetermined"
        for judged in baseline.alert_verdicts.values():
            said = {judged.get("verdict"), judged.get("by_evidence")}
            if judged.get("basis") == "model" and "undetermined" not in said and len(said) > 1 and (
                    "true_positive" in said):
                return "the learned model and the rule and vendor evidence disagree"
        return None

    # ---- the call -------------------------------------------------------

    def _ask(self, messages, schema) -> tuple[LLMAnswer | None, dict | None, str | None]:
        server_schema = schema if self.settings.schema_mode == "server" else None
        call: dict | None = None
        for attempt in range(2):  # the second attempt is the one repair retry
            try:
                result = self.client.chat(messages, server_schema)
            except LLMError as exc:
                self.breaker.failure()
                return None, call, str(exc)
            except Exception as exc:  # a client bug must cost the model's vote, never the run
                self.breaker.failure()
                return None, call, f"client error {type(exc).__name__}"
            self.breaker.success()
            tokens = result.prompt_tokens + result.completion_tokens
            self.budget.spend(tokens)
            self.calls += 1
            self.tokens += tokens
            self.call_latencies_ms.append(result.latency_ms)
            call = {"model": result.model, "prompt_tokens": result.prompt_tokens,
                    "completion_tokens": result.completion_tokens, "latency_ms": result.latency_ms,
                    "attempts": attempt + 1}
            try:
                return LLMAnswer.model_validate(parse_json_object(result.text)), call, None
            except (ValueError, ValidationError) as exc:
                problem = str(exc).splitlines()[0][:200]
                messages = messages + [
                    {"role": "assistant", "content": result.text[:2000]},
                    {"role": "user", "content": f"That answer was invalid ({problem}). Reply with only the JSON "
                                                f"object matching the schema."},
                ]
        return None, call, "malformed answer after one repair retry"

    @staticmethod
    def _estimate(messages) -> int:
        return sum(len(m["content"]) for m in messages) // 3 + 400

    # ---- checks ---------------------------------------------------------

    @staticmethod
    def _ungrounded(answer: LLMAnswer, ids: set[str], menu: list[str]) -> str | None:
        unknown = [i for i in answer.evidence_ids if i not in ids]
        if unknown:
            return f"cited evidence the case does not have: {unknown[:3]}"
        if answer.action != "none" and answer.action not in menu:
            return f"proposed an action that is not on the menu: {answer.action!r}"
        return None

    def _merge(self, answer: LLMAnswer, baseline: Assessment, flags: list[str], injection: list[str],
               call: dict | None) -> Assessment:
        verdict, confidence = answer.verdict, answer.confidence
        notes = []
        gap = _SEVERITY[answer.verdict] - _SEVERITY[baseline.verdict]
        strong = answer.confidence >= _STRONG and baseline.confidence >= _STRONG
        overruled = gap < 0
        if overruled:
            # The cautious view stands whatever the model's confidence: a model talked, tricked or simply
            # wrong into "benign" never closes a case on its own word. A confident dissent goes to a person.
            verdict, confidence = baseline.verdict, baseline.confidence
            notes.append(f"model said {answer.verdict} ({answer.confidence:.2f}), evidence scoring said "
                         f"{baseline.verdict} ({baseline.confidence:.2f}): the more cautious verdict stands")
            if answer.confidence >= _STRONG or injection:
                flags = flags + ["reasoner_disagreement"]
        elif gap > 0 and (strong or injection):
            flags = flags + ["reasoner_disagreement"]
            notes.append(f"model said {answer.verdict} ({answer.confidence:.2f}), evidence scoring said "
                         f"{baseline.verdict} ({baseline.confidence:.2f})")
        if injection:
            notes.append(f"instruction-like text in the alert data ({'; '.join(injection[:3])}); "
                         f"treated as data")
        narrative = answer.narrative.strip()
        if scan_text(narrative):
            # The model echoed instruction-like claims; they must not reach the notes as its finding.
            narrative = "[narrative withheld: it repeated instruction-like text from the alert data]"
            flags = flags + ["narrative_withheld"]
        rationale = f"model: {narrative}" + (f" | {' | '.join(notes)}" if notes else "") + \
            f" | evidence scoring: {baseline.rationale}"
        return Assessment(
            verdict=verdict, confidence=round(confidence, 3), score=baseline.score,
            evidence_ids=(baseline.evidence_ids if overruled else answer.evidence_ids) or baseline.evidence_ids,
            rationale=rationale, reasoner=self.name,
            # An action the model chose for a verdict that did not stand is no choice: the playbook picks.
            proposed_action=None if overruled or answer.action == "none" else answer.action,
            open_questions=answer.open_questions[:3], flags=flags, llm=call,
        )
