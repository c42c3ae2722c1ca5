package io.omai.ibvf.report;

import io.omai.ibvf.qos.QosCapability;
import io.omai.ibvf.report.InventoryReport.PfRow;
import io.omai.ibvf.report.InventoryReport.VfRow;
import java.util.Optional;
import java.util.OptionalInt;

/** Renders an {@link InventoryReport} as JSON; absent values are {@code null}, field names are camelCase. */
final class JsonReportRenderer {

    String render(InventoryReport report) {
        JsonWriter json = new JsonWriter().beginObject().name("pfs").beginArray();
        for (PfRow pf : report.pfs()) {
            json.beginObject()
                    .name("pciAddress")
                    .value(pf.pciAddress())
                    .name("linkLayer")
                    .value(pf.linkLayer());
            optional(json.name("numaNode"), pf.numaNode());
            json.name("netdev")
                    .value(pf.netdev().orElse(null))
                    .name("rdmaDevice")
                    .value(pf.rdmaDevice().orElse(null))
                    .name("portState")
                    .value(pf.portState().orElse(null))
                    .name("totalVfs")
                    .value(pf.totalVfs())
                    .name("numVfs")
                    .value(pf.numVfs());
            qos(json.name("qos"), pf.qos());
            json.name("vfs").beginArray();
            for (VfRow vf : pf.vfs()) {
                vf(json, vf);
            }
            json.endArray().endObject();
        }
        return json.endArray().endObject().finish();
    }

    private static void vf(JsonWriter json, VfRow vf) {
        json.beginObject().name("index").value(vf.index()).name("pciAddress").value(vf.pciAddress());
        nullable(json.name("rdmaDevice"), vf.rdmaDevice());
        nullable(json.name("uverbs"), vf.uverbs());
        nullable(json.name("nodeGuid"), vf.nodeGuid());
        nullable(json.name("portGuid"), vf.portGuid());
        nullable(json.name("portState"), vf.portState());
        json.name("healthy").value(vf.healthy()).name("problems").beginArray();
        vf.problems().forEach(json::value);
        json.endArray().endObject();
    }

    private static void qos(JsonWriter json, QosCapability qos) {
        json.beginObject();
        support(json.name("maxTxRate"), qos.maxTxRate());
        support(json.name("minTxRate"), qos.minTxRate());
        json.name("lever").value(qos.lever()).endObject();
    }

    private static void support(JsonWriter json, QosCapability.Support support) {
        json.beginObject().name("supported").value(support.enforced());
        switch (support) {
            case QosCapability.Supported(String mechanism) ->
                json.name("mechanism").value(mechanism);
            case QosCapability.Unsupported(String reason) -> json.name("reason").value(reason);
        }
        json.endObject();
    }

    private static void nullable(JsonWriter json, Optional<String> value) {
        json.value(value.orElse(null));
    }

    private static void optional(JsonWriter json, OptionalInt value) {
        if (value.isPresent()) {
            json.value(value.getAsInt());
        } else {
            json.nullValue();
        }
    }
}
