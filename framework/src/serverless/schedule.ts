import { rateExpression } from '../config/tick-period.js';
import type { Manifest } from '../define/manifest.js';
import { TICK_EVENT } from '../runtime/tick.js';
import { idleAllowance } from '../windows/spec.js';
import type { Template, TemplateFunction } from './template.js';

/**
 * The schedule that makes a deployed function's time move while no record arrives: an EventBridge
 * rule (`AWS::Events::Rule`, what Serverless's own `schedule` event compiles to) that invokes the
 * function with the tick event `{"sluice":"tick"}` every `tick` period, and the resource-based
 * permission that lets that rule, and nothing else, invoke it. A rule needs no IAM role (the
 * Scheduler would need one, and the deployer `iam:PassRole` on it); both run at most once a minute.
 *
 * A tick needs no retry: the next one does the same work, and a tick that overlaps the next one,
 * or a batch of the same partition, is resolved by the idle protocol (`pipeline/idle.ts`). So the
 * rule does not retry a failed delivery and, unless serverless.yml configures the function's
 * asynchronous invocations itself (`maximumRetryAttempts`), Lambda does not retry a failed tick.
 * https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-events-rule.html
 */

/**
 * Whether a function has a window that closes when its partition goes idle, so it needs ticks.
 *
 * @example
 * hasIdleWindows(handler.sluice.manifest); // true for the sessions example (idle: '10s')
 */
export function hasIdleWindows(manifest: Manifest): boolean {
  return manifest.steps.some((s) => s.kind === 'window' && idleAllowance(s.window) !== undefined);
}

/**
 * Adds the tick schedule of one function to the template, when it has idle windows and its
 * `tick` is not false: the rule, the permission and (unless one exists) the asynchronous
 * invocation settings without retries. Returns the ids of the resources added.
 *
 * @example
 * addTickSchedule(template.Resources, fn); // ['SessionsSluiceTickRule', 'SessionsSluiceTickPermission', 'SessionsSluiceTickInvokeConfig']
 */
export function addTickSchedule(r: Template['Resources'], f: TemplateFunction): string[] {
  if (f.options.tickMs === false || !hasIdleWindows(f.manifest)) return [];
  const base = f.lambdaLogicalId.replace(/LambdaFunction$/, '');
  const fn = { 'Fn::GetAtt': [f.lambdaLogicalId, 'Arn'] };
  const ruleId = `${base}SluiceTickRule`;
  const rate = rateExpression(f.options.tickMs);
  r[ruleId] = {
    Type: 'AWS::Events::Rule',
    Properties: {
      Description: `Sluice idle ticks of ${f.deployedName}: ${JSON.stringify(TICK_EVENT)} ${rate}`.slice(0, 512),
      ScheduleExpression: rate,
      State: 'ENABLED',
      Targets: [
        {
          Id: 'sluice-tick',
          Arn: fn,
          Input: JSON.stringify(TICK_EVENT),
          // A late tick is worth nothing: the next one comes within a period.
          RetryPolicy: { MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 },
        },
      ],
    },
  };
  const permissionId = `${base}SluiceTickPermission`;
  r[permissionId] = {
    Type: 'AWS::Lambda::Permission',
    Properties: {
      Action: 'lambda:InvokeFunction',
      FunctionName: fn,
      Principal: 'events.amazonaws.com',
      SourceArn: { 'Fn::GetAtt': [ruleId, 'Arn'] },
    },
  };
  const added = [ruleId, permissionId];
  const configured = Object.values(r).some(
    (res) => res.Type === 'AWS::Lambda::EventInvokeConfig' && refersTo(res.Properties?.FunctionName, f.lambdaLogicalId),
  );
  if (!configured) {
    // Ticks are the function's only asynchronous invocations (the event source mapping invokes it
    // synchronously), so this changes nothing else.
    const configId = `${base}SluiceTickInvokeConfig`;
    r[configId] = {
      Type: 'AWS::Lambda::EventInvokeConfig',
      Properties: { FunctionName: { Ref: f.lambdaLogicalId }, Qualifier: '$LATEST', MaximumRetryAttempts: 0, MaximumEventAgeInSeconds: 60 },
    };
    added.push(configId);
  }
  return added;
}

function refersTo(x: unknown, id: string): boolean {
  const o = x as { Ref?: unknown; 'Fn::GetAtt'?: unknown[] } | undefined;
  return o?.Ref === id || o?.['Fn::GetAtt']?.[0] === id;
}
