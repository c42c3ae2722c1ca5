package io.omai.agent.schedapi;

import static org.assertj.core.api.Assertions.assertThat;

import io.omai.agent.schedapi.DeviceAttributeOverlay.Rule;
import io.omai.agent.schedapi.DeviceAttributeOverlay.Selector;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class DeviceAttributeOverlayTest {
    private final NodeSnapshot reported = NodeFixtures.eightGpus();

    @Test
    void apply_laterRulesWinPerKeyAndTagsAccumulate() {
        var overlay = new DeviceAttributeOverlay(List.of(
                new Rule(new Selector.All(), Map.of("rack", "r12", "class", "batch"), Set.of("dc-west")),
                new Rule(new Selector.ByIndex(2), Map.of("class", "infer"), Set.of("spare")),
                new Rule(new Selector.ByUuid(NodeFixtures.uuid(3)), Map.of("compute_capability", "9.0a"), Set.of()),
                new Rule(new Selector.ByModel("NVIDIA A100-SXM4-40GB"), Map.of("class", "never"), Set.of())));

        NodeSnapshot labelled = overlay.apply(reported);

        GpuSnapshot zero = labelled.gpus().get(0);
        assertThat(zero.attributes())
                .containsEntry("rack", "r12")
                .containsEntry("class", "batch")
                .containsEntry("compute_capability", "9.0");
        assertThat(zero.tags()).containsExactlyInAnyOrder("nvlink", "dc-west");
        assertThat(labelled.gpus().get(2).deviceClass()).isEqualTo("infer");
        assertThat(labelled.gpus().get(2).tags()).contains("spare", "dc-west");
        assertThat(labelled.gpus().get(3).attributes()).containsEntry("compute_capability", "9.0a");
        assertThat(labelled.gpus()).noneMatch(gpu -> gpu.deviceClass().equals("never"));
    }

    @Test
    void apply_neverTouchesNvmlFactsOrAllocations() {
        var overlay = new DeviceAttributeOverlay(
                List.of(new Rule(new Selector.All(), Map.of("model", "fake", "uuid", "fake"), Set.of())));

        GpuSnapshot labelled = overlay.apply(reported.gpus().get(0));

        assertThat(labelled.uuid()).isEqualTo(NodeFixtures.uuid(0));
        assertThat(labelled.model()).isEqualTo(NodeFixtures.MODEL);
        assertThat(labelled.memoryBytes()).isEqualTo(reported.gpus().get(0).memoryBytes());
        assertThat(labelled.attributes()).containsEntry("model", "fake");
    }

    @Test
    void none_returnsTheSnapshotUnchanged() {
        assertThat(DeviceAttributeOverlay.none().apply(reported)).isSameAs(reported);
    }
}
