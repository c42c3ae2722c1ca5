package io.omai.simulator.simulate;

import io.fabric8.kubernetes.client.server.mock.KubernetesCrudDispatcher;
import io.fabric8.mockwebserver.http.MockResponse;
import java.util.regex.Pattern;

/**
 * fabric8's mock API server in CRUD mode, for an API that holds one node's pods only. The mock matches field
 * selectors on {@code metadata.name} and {@code metadata.namespace} alone, so the selector the agent's informer
 * sends, {@code spec.nodeName=<node>}, would select nothing. Every pod this API holds is bound to the simulated
 * node (the simulation creates no other), so for that node the selector selects them all: it is dropped from the
 * request, as a real API server's answer would be the same list. Public for end-to-end tests that run the agent
 * against such an API (test-harness).
 */
public final class SingleNodeCrudDispatcher extends KubernetesCrudDispatcher {
    private final Pattern nodeSelector;

    public SingleNodeCrudDispatcher(String nodeName) {
        this.nodeSelector =
                Pattern.compile("(?<=[?&])fieldSelector=spec\\.nodeName(%3D|=)" + Pattern.quote(nodeName) + "(&|$)");
    }

    @Override
    public MockResponse handleGet(String path) {
        return super.handleGet(withoutNodeSelector(path));
    }

    @Override
    public MockResponse handleWatch(String path) {
        return super.handleWatch(withoutNodeSelector(path));
    }

    String withoutNodeSelector(String path) {
        String stripped = nodeSelector.matcher(path).replaceFirst("");
        return stripped.endsWith("?") || stripped.endsWith("&")
                ? stripped.substring(0, stripped.length() - 1)
                : stripped;
    }
}
