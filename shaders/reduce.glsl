/* reduce.glsl: workgroup-wide sum and max of one float per invocation; every invocation gets the
 * result. Call in uniform control flow (they contain barriers). With USE_SUBGROUP each subgroup
 * reduces in registers and one value per subgroup goes through shared memory; without it, a tree
 * in shared memory (WG must be a power of two, which the host guarantees). */
shared float red_buf[WG];

#ifdef USE_SUBGROUP
float wg_sum(float v)
{
    v = subgroupAdd(v);
    if (subgroupElect())
        red_buf[gl_SubgroupID] = v;
    barrier();
    float r = 0.0;
    for (uint i = 0; i < gl_NumSubgroups; i++)
        r += red_buf[i];
    barrier();
    return r;
}

float wg_max(float v)
{
    v = subgroupMax(v);
    if (subgroupElect())
        red_buf[gl_SubgroupID] = v;
    barrier();
    float r = red_buf[0];
    for (uint i = 1; i < gl_NumSubgroups; i++)
        r = max(r, red_buf[i]);
    barrier();
    return r;
}
#else
float wg_sum(float v)
{
    uint lid = gl_LocalInvocationID.x;
    red_buf[lid] = v;
    barrier();
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (lid < s)
            red_buf[lid] += red_buf[lid + s];
        barrier();
    }
    float r = red_buf[0];
    barrier();
    return r;
}

float wg_max(float v)
{
    uint lid = gl_LocalInvocationID.x;
    red_buf[lid] = v;
    barrier();
    for (uint s = WG / 2; s > 0; s >>= 1) {
        if (lid < s)
            red_buf[lid] = max(red_buf[lid], red_buf[lid + s]);
        barrier();
    }
    float r = red_buf[0];
    barrier();
    return r;
}
#endif
