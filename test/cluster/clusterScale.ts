/** The CI slice runs small bursts; `npm run test:cluster:full` (CLUSTER_FULL=1) runs the long ones. */
export const CLUSTER_FULL = process.env.CLUSTER_FULL === '1';

export function clusterScale(ciSlice: number, full: number): number {
  return CLUSTER_FULL ? full : ciSlice;
}
