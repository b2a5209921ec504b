/** The Containers screen (screens/containers/) and the note every Docker screen shows while the VM is not running. */
export { Containers } from './containers/ContainersScreen';
export { NotRunning } from '../components/NotRunning';
