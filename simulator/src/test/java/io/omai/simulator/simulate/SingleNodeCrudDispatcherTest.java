package io.omai.simulator.simulate;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/** Only the simulated node's own selector is dropped; any other query is the mock's to answer (or refuse). */
class SingleNodeCrudDispatcherTest {
    private final SingleNodeCrudDispatcher dispatcher = new SingleNodeCrudDispatcher("sim-node");

    @Test
    void theInformersNodeSelectorIsDroppedWhereverItStands() {
        assertThat(dispatcher.withoutNodeSelector("/api/v1/pods?fieldSelector=spec.nodeName%3Dsim-node"))
                .isEqualTo("/api/v1/pods");
        assertThat(dispatcher.withoutNodeSelector(
                        "/api/v1/pods?fieldSelector=spec.nodeName%3Dsim-node&resourceVersion=0"))
                .isEqualTo("/api/v1/pods?resourceVersion=0");
        assertThat(dispatcher.withoutNodeSelector("/api/v1/pods?allowWatchBookmarks=true&fieldSelector="
                        + "spec.nodeName%3Dsim-node&resourceVersion=1&watch=true"))
                .isEqualTo("/api/v1/pods?allowWatchBookmarks=true&resourceVersion=1&watch=true");
        assertThat(dispatcher.withoutNodeSelector("/api/v1/pods?watch=true&fieldSelector=spec.nodeName=sim-node"))
                .isEqualTo("/api/v1/pods?watch=true");
    }

    @Test
    void anotherNodesSelectorOrAnotherFieldIsLeftAlone() {
        for (String path : new String[] {
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dsim-node-2",
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dother",
            "/api/v1/pods?fieldSelector=metadata.name%3Dx",
            "/api/v1/namespaces/a/pods/sim-node"
        }) {
            assertThat(dispatcher.withoutNodeSelector(path)).isEqualTo(path);
        }
    }
}
