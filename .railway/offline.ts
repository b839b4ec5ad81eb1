/**
 * Evaluate railway.ts offline, the way the Railway CLI does before it diffs against Railway:
 * import the module, call its default export, JSON-serialize the project it returns. No network,
 * no login. `npm --prefix .railway run plan:offline` prints the JSON; railway.test.ts checks it.
 */
import { pathToFileURL } from "node:url";

import {
  createRailwayContext,
  RAILWAY_GRAPH_VERSION,
  type Edge,
  type RailwayContext,
  type RailwayGraph,
  type ResourceNode,
} from "railway/iac";

import program from "./railway.ts";

/** The project railway.ts describes, as plain JSON (what the CLI reads from it). */
export async function evaluate(ctx: RailwayContext): Promise<{ name: string; resources: ResourceNode[] }> {
  const { project } = await import("railway/iac");
  const definition = await program(ctx, project);
  // The CLI serializes the definition with JSON.stringify; do the same (drops the `env` helpers).
  const json: unknown = JSON.parse(JSON.stringify(definition));
  return json as { name: string; resources: ResourceNode[] };
}

/** The context the CLI passes for `railway config plan` on a linked project. */
export function planContext(projectName = "my-railway-project"): RailwayContext {
  return createRailwayContext({
    command: "plan",
    projectName,
    environment: "production",
  });
}

/** The graph the CLI builds from the definition: resources, and one edge per variable reference. */
export function toGraph(definition: { name: string; resources: ResourceNode[] }): RailwayGraph {
  const edges: Edge[] = [];
  for (const resource of definition.resources) {
    if (resource.type !== "service" && resource.type !== "database") continue;
    for (const [key, value] of Object.entries(resource.variables ?? {})) {
      if (value.type === "reference") {
        edges.push({ from: resource.address, to: value.resource, type: "variable", key });
      }
    }
  }
  return {
    version: RAILWAY_GRAPH_VERSION,
    project: { name: definition.name },
    environments: [],
    resources: definition.resources,
    edges,
  };
}

const invokedPath = process.argv[1];
if (invokedPath !== undefined && import.meta.url === pathToFileURL(invokedPath).href) {
  const definition = await evaluate(planContext());
  process.stdout.write(`${JSON.stringify(definition, null, 2)}\n`);
}
