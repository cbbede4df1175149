/**
 * A minimal Lambda context for invocations outside Lambda (`sluice dev`, the emulator, tests): the
 * handler reads its remaining time from it to leave room for a clean failure.
 * https://docs.aws.amazon.com/lambda/latest/dg/nodejs-context.html
 *
 * @example
 * const response = await handler(event, lambdaContext('sensor-sums'));
 */
export function lambdaContext(functionName: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
    memoryLimitInMB: '1024',
    awsRequestId: crypto.randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}
