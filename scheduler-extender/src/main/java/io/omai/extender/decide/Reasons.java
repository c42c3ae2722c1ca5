package io.omai.extender.decide;

import io.omai.placement.Plan;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * Turns the placement model's per-GPU refusals into one line that reads like kubectl describe output and that
 * kube-scheduler can aggregate across nodes ("0/40 nodes are available: 12 omai: ..."): counts by cause, no UUIDs.
 */
final class Reasons {
    static final String PREFIX = "omai: ";

    private Reasons() {}

    enum Cause {
        CAPACITY("without enough free milli-GPU or memory"),
        UNHEALTHY("unhealthy"),
        TENANT("held by another tenant (anti-affinity)"),
        SELECTOR("not matching " + PodDemand.SELECTOR_ANNOTATION);

        final String text;

        Cause(String text) {
            this.text = text;
        }
    }

    static Cause causeOf(String message) {
        if (message.startsWith("unhealthy")) {
            return Cause.UNHEALTHY;
        }
        if (message.startsWith("anti-affinity")) {
            return Cause.TENANT;
        }
        if (message.startsWith("expression")) {
            return Cause.SELECTOR;
        }
        return Cause.CAPACITY;
    }

    static String describe(List<Plan.Refusal> refusals, PodDemand pod) {
        if (refusals.isEmpty()) {
            return PREFIX + "does not fit";
        }
        String container = refusals.getFirst().container();
        Map<Cause, Integer> counts = new EnumMap<>(Cause.class);
        List<String> nodeLevel = new ArrayList<>();
        for (Plan.Refusal refusal : refusals) {
            if (refusal.gpuUuid().isEmpty()) {
                nodeLevel.add(refusal.message());
            } else {
                counts.merge(causeOf(refusal.message()), 1, Integer::sum);
            }
        }
        var need = pod.containers().stream()
                .filter(c -> c.name().equals(container))
                .findFirst()
                .or(() -> pod.initContainers().stream()
                        .filter(c -> c.name().equals(container))
                        .findFirst());
        var line = new StringBuilder(PREFIX)
                .append("container '")
                .append(container)
                .append('\'');
        need.ifPresent(n -> line.append(" (")
                .append(n.milli())
                .append(" milli-GPU")
                .append(n.vfs() > 0 ? ", " + n.vfs() + " VF" : "")
                .append(')'));
        line.append(": ");
        var parts = new ArrayList<String>();
        counts.forEach((cause, count) -> parts.add(count + " GPU" + (count == 1 ? " " : "s ") + cause.text));
        parts.addAll(nodeLevel);
        line.append(String.join("; ", parts));
        return line.toString();
    }

    /** Whether evicting pods could not help, judged from reasons alone (Fit answers from the agent): no capacity cause. */
    static boolean unresolvable(List<Plan.Refusal> refusals) {
        boolean capacity = refusals.stream()
                .anyMatch(r -> (!r.gpuUuid().isEmpty() && causeOf(r.message()) == Cause.CAPACITY)
                        || r.message().contains("VF(s) needed"));
        return !capacity;
    }
}
